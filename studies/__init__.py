"""Study presets (YAML) for `lwl-search --preset NAME`; data, not code."""
