"""From a study to training configs: the configs of the selected trials (`configs`) and each complete trial's
config as an Optuna artifact (`artifacts`)."""
