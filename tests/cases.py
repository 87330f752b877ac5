"""Cases several test files share (on the path through pytest's `pythonpath`, pyproject.toml)."""

# The reference code's options, in three groups that between them set every one (tests/models/test_reference_options.py
# checks each on its own): the bitwise properties hold under each group as under Section V's recipe.
REFERENCE_OPTIONS = {
    "sgd-relu-dropout2d": dict(
        optimizer="sgd", momentum=0.9, weight_decay=1e-4, activation="relu", dropout_kind="channel"
    ),
    "amsgrad-flat-sim-smoothing": dict(
        optimizer="amsgrad",
        similarity_std=False,
        label_smoothing=0.1,
        zero_init_output=True,
        beta=0.9,
        dim_in_decoder=256,
    ),
    "cutout-epoch-milestones": dict(cutout=6, cutout_holes=2, lr_milestone_epochs=(1,), lr_gamma=0.5),
}
