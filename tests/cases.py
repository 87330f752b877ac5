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

# Networks of the kinds the reference code builds beside Section V's (tests/models/test_reference_networks.py checks
# each against the reference's formulas) as Schedule fields: the bitwise properties hold for each as for the default.
# Narrow widths as every test's; the lead widths sit in the first stage, which every list in the tests shares.
NETWORKS = {
    "vgg-widening-fc-bias": dict(family="vgg", lead_widths=((2,), (), (), ()), fc_units=(12,), conv_bias=True),
    "resnet-per-conv": dict(local_unit="conv"),
    "bottleneck-per-conv-maxpool": dict(block="bottleneck", local_unit="conv", downsample="maxpool"),
    "vgg-7x7s2-first-conv": dict(family="vgg", first_conv="7x7s2"),
}


def network(name, stages):
    """NETWORKS[name] for a schedule of `stages` stages (its lead widths cut or padded to fit)."""
    fields = dict(NETWORKS[name])
    if "lead_widths" in fields:
        fields["lead_widths"] = (tuple(fields["lead_widths"]) + ((),) * stages)[:stages]
    return fields


def prefixes(schedule):
    """The unit plans of every prefix of `schedule`: two schedules share unit j when their j-th prefixes are equal."""
    from lwl.models import unit_plan

    plans = [repr(p) for p in unit_plan(schedule)]
    return [tuple(plans[: k + 1]) for k in range(len(plans))]


def shared_units(a, b):
    """How many units schedules a and b share from the first (the same plan for each of them and all before)."""
    return len(set(prefixes(a)) & set(prefixes(b)))


# A tiny study: the embedded digits data, narrow widths, a few hundred images, the CPU. Every test that runs
# lwl-search (or lwl-train) starts from these flags.
TINY_WIDTHS = "4,8,8,16"


def tiny(*extra, dataset="digits", epochs=1, train_limit=128, widths=TINY_WIDTHS, quiet=True):
    """The flags of a tiny study, then `extra`; None leaves a flag out (its default then holds)."""
    flags = []
    for flag, value in (
        ("--dataset", dataset),
        ("--widths", widths),
        ("--epochs", epochs),
        ("--train-limit", train_limit),
        ("--device", "cpu"),
    ):
        if value is not None:
            flags += [flag, str(value)]
    return [*flags, *(["--quiet"] if quiet else []), *extra]


NO_CONFIRM = ["--confirm", "off"]  # for tests about the search; confirmation is tests/search/test_confirm.py's
