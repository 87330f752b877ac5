"""Every bad input a user can give: one line naming the problem and the fix, exit status 2, no traceback, the
study database unchanged (compared as a full SQL dump before and after), and nothing created anywhere: each case
runs in a fresh working directory, and the listings of it, of its scratch folder and of the study's folder are
compared before and after (no database, no table, no folder, no study). A command whose reader goes away
(`| head -1`) ends without a traceback."""

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cases import tiny

from lwl.dashboards.commands import report_main
from lwl.models.commands import inspect_main, train_main
from lwl.search.commands import export_main, search_main

TINY = tiny("--pruner", "none")
SECRET = "hunter2"

NOWHERE = "/proc/lwl-nowhere"  # a place no one can write, not even root (Linux)
# Files in the scratch folder {tmp}, made before each case: study presets, training configs, a plain file (afile) and
# a folder (adir, dir.yaml).
FILES: dict[str, str | bytes] = {
    "enqueue-int.yaml": "budget: 8\nenqueue: 5\n",
    "widths-map.yaml": "budget: 8\nwidths: {a: 1}\n",
    "epochs-frac.yaml": "budget: 8\nepochs: 1.5\n",
    "epochs-zero.yaml": "budget: 8\nepochs: 0\n",
    "epochs-bool.yaml": "budget: 8\nepochs: true\n",
    "epochs-list.yaml": "budget: 8\nepochs: [1, 2]\n",
    "trials-frac.yaml": "budget: 8\ntrials: 1.5\n",
    "budget-bool.yaml": "budget: true\n",
    "lr-inf.yaml": "budget: 8\nlr: .inf\n",
    "seed-neg.yaml": "budget: 8\nseed: -3\n",
    "quiet-int.yaml": "budget: 8\nquiet: 3\n",
    "sampler-bad.yaml": "budget: 8\nsampler: cmaes\n",
    "dataset-map.yaml": "budget: 8\ndataset: {x: 1}\n",
    "name-list.yaml": "budget: 8\nstudy_name: [a]\n",
    "gb-nan.yaml": "budget: 8\nmode: sequential\nprefix_store_gb: .nan\n",
    "deep.yaml": "budget: " + "[" * 5000 + "]" * 5000 + "\n",
    "binary.yaml": b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00",
    "broken.yaml": "schedule: [1, 1\nrecipe: {",
    "partial.yaml": "recipe:\n  dataset: digits\n",
    "good.yaml": "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\nrecipe:\n  dataset: digits\n",
    "huge.yaml": "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\n  widths: [100000000, 1, 1, 1]\n"
    "recipe:\n  dataset: digits\n",
    "deep-config.yaml": "schedule: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    "seed-config.yaml": "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\n"
    "recipe:\n  dataset: digits\n  seed: -1\n",
    "fc-bad-config.yaml": "schedule:\n  hierarchy: [1, 1, 2]\n  family: vgg\n  fc_units: [0]\n"
    "recipe:\n  dataset: digits\n",
    "lead-bad-config.yaml": "schedule:\n  hierarchy: [1, 1, 2]\n  family: vgg\n  lead_widths: [[8]]\n"
    "recipe:\n  dataset: digits\n",
    "fc-list.yaml": "budget: 8\nfc_units: {a: 1}\n",
    "aux-config.yaml": "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\n"
    "recipe:\n  dataset: digits\n  aux_convs: 1000000\n",
    "fp8-config.yaml": "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\n"
    "recipe:\n  dataset: digits\n  precision: fp8\n",
    # billion laughs: nine levels of nine aliases, 9**9 strings once expanded, in the provenance of a valid config
    "bomb-config.yaml": "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\nrecipe:\n  dataset: digits\n"
    "provenance:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)),
    # valid idx files of three MNIST images (classes 0, 1, 2)
    "mnist3/MNIST/raw/train-images-idx3-ubyte": struct.pack(">4i", 2051, 3, 28, 28) + bytes(3 * 28 * 28),
    "mnist3/MNIST/raw/train-labels-idx1-ubyte": struct.pack(">2i", 2049, 3) + bytes([0, 1, 2]),
    "mnist3/MNIST/raw/t10k-images-idx3-ubyte": struct.pack(">4i", 2051, 3, 28, 28) + bytes(3 * 28 * 28),
    "mnist3/MNIST/raw/t10k-labels-idx1-ubyte": struct.pack(">2i", 2049, 3) + bytes([0, 1, 2]),
    # ten images, one of each class: a validation split of 0.1 or 0.2 holds out none of them
    **{
        f"mnist10/MNIST/raw/{split}-{kind}": content
        for split in ("train", "t10k")
        for kind, content in (
            ("images-idx3-ubyte", struct.pack(">4i", 2051, 10, 28, 28) + bytes(10 * 28 * 28)),
            ("labels-idx1-ubyte", struct.pack(">2i", 2049, 10) + bytes(range(10))),
        )
    },
    "afile": "not a folder",
}
TINY_SEARCH = ["--budget", "8", "--device", "cpu", "--storage", "{new}"]


def search(*args: str) -> list[str]:
    return [*TINY_SEARCH, *args]


def preset(name: str) -> list[str]:
    return ["--preset", f"{{tmp}}/{name}", "--device", "cpu", "--storage", "{new}"]


TRAIN = ["--hierarchy", "1,1,2,2", "--epochs", "1", "--device", "cpu"]
EXPORT = ["--storage", "{db}", "--study-name", "s"]
REPORT = ["--storage", "{db}", "--study-name", "s"]

# (id, command, arguments, what the one line must say). {db}: an existing study's storage (study "s", budget 8,
# one finished trial, plus study "empty" with none); {new}: a storage path that must not come into being; {tmp}: a
# scratch folder.
CASES = [
    ("budget below stages", search_main, ["--budget", "3", "--storage", "{new}"], "smaller than --stages 4"),
    ("no feasible list", search_main, ["--budget", "5", "--storage", "{new}"], "the smallest budget with one is 6"),
    ("no budget", search_main, ["--storage", "{new}"], "--budget is required"),
    (
        "unknown data set",
        search_main,
        ["--budget", "8", "--dataset", "imagenet", "--storage", "{new}"],
        "argument --dataset: invalid choice: 'imagenet'",
    ),
    (
        "unknown family",
        search_main,
        ["--budget", "8", "--family", "vit", "--storage", "{new}"],
        "argument --family: invalid choice: 'vit'",
    ),
    (
        "unknown preset",
        search_main,
        ["--budget", "8", "--preset", "nosuch", "--storage", "{new}"],
        "no such study preset or network",
    ),
    (
        "unknown sampler",
        search_main,
        ["--budget", "8", "--sampler", "cmaes", "--storage", "{new}"],
        "argument --sampler: invalid choice: 'cmaes'",
    ),
    (
        "unknown pruner",
        search_main,
        ["--budget", "8", "--pruner", "percentile", "--storage", "{new}"],
        "argument --pruner: invalid choice: 'percentile'",
    ),
    ("malformed storage URL", search_main, ["--budget", "8", "--storage", "ftp://nowhere/x"], "is not understood"),
    (
        "unreachable storage",
        search_main,
        ["--budget", "8", "--storage", f"postgresql://lwl:{SECRET}@127.0.0.1:1/lwl"],
        "check that the server runs",
    ),
    # issue 28's URL forms, each on a closed port: the password appears nowhere (the test checks every line for it)
    *[
        (f"unreachable storage, {form} ({prog})", command, [*args, "--storage", url], "cannot open storage")
        for form, url in (
            ("a user name with @", f"postgresql://u@x:{SECRET}@127.0.0.1:1/lwl"),
            ("a password with a space", f"postgresql://u:{SECRET} too@127.0.0.1:1/lwl"),
            ("a percent-encoded query key", f"postgresql://u@127.0.0.1:1/lwl?pass%77ord={SECRET}"),
            ("an unencoded @ in the password", f"postgresql://u:pw@{SECRET}@127.0.0.1:1/lwl"),
        )
        for prog, command, args in (
            ("lwl-search", search_main, ["--budget", "8"]),
            ("lwl-export", export_main, ["--study-name", "s", "--out", "{tmp}/c"]),
            ("lwl-report", report_main, ["--study-name", "s"]),
        )
    ],
    (
        "data set missing",
        search_main,
        ["--budget", "8", "--dataset", "cifar10", "--data-root", "{tmp}", "--storage", "{new}"],
        "pass --download to fetch it",
    ),
    (
        "data root missing (mnist)",
        train_main,
        ["--dataset", "mnist", "--data-root", "{tmp}/absent", *TRAIN],
        "MNIST not found under {tmp}/absent (looked for MNIST/raw/): pass --download to fetch it, or --data-root",
    ),
    (
        "data root missing (svhn)",
        search_main,
        ["--budget", "8", "--dataset", "svhn", "--data-root", "{tmp}/absent", "--storage", "{new}"],
        "SVHN not found under {tmp}/absent (looked for train_32x32.mat): pass --download",
    ),
    (
        "study reused with other settings",
        search_main,
        ["--budget", "8", "--epochs", "3", "--storage", "{db}", "--study-name", "s"],
        "epochs 1 (stored) vs 3 (now)",
    ),
    (
        "study reused with other objectives",
        search_main,
        [*TINY, "--budget", "8", "--objectives", "accuracy,params", "--storage", "{db}", "--study-name", "s"],
        "objectives None (stored) vs ['accuracy', 'params'] (now)",
    ),
    (
        "infeasible enqueue",
        search_main,
        ["--budget", "8", "--enqueue", "4,2,1,1", "--storage", "{db}", "--study-name", "s"],
        "--enqueue 4,2,1,1: not feasible",
    ),
    (
        "export with no finished trial",
        export_main,
        ["--storage", "{db}", "--study-name", "empty", "--out", "{tmp}/c"],
        "has no complete trial yet",
    ),
    (
        "export of a missing study",
        export_main,
        ["--storage", "{db}", "--study-name", "nope", "--out", "{tmp}/c"],
        "no study named 'nope'",
    ),
    ("config not YAML", train_main, ["--config", "{tmp}/broken.yaml", "--out", "{tmp}/run"], "not valid YAML"),
    (
        "config missing a field",
        train_main,
        ["--config", "{tmp}/partial.yaml", "--out", "{tmp}/run"],
        "missing field schedule",
    ),
    (
        "resume without checkpoint",
        train_main,
        ["--config", "{tmp}/good.yaml", "--out", "{tmp}/run", "--resume"],
        "no checkpoint at",
    ),
    # 1. Inputs that ended in a traceback: seeds, devices, in-memory storages, preset values of the wrong type,
    # unusable --out paths, sizes that cannot be allocated.
    ("negative seed", search_main, search("--seed", "-1"), "--seed -1: out of range: use a whole number >= 0"),
    ("seed above 2**32", search_main, search("--seed", str(2**70)), f"--seed {2**70}: out of range"),
    ("unknown device", search_main, search("--device", "banana"), "--device banana: not a device to train on"),
    ("missing GPU", search_main, search("--device", "cuda:99"), "--device cuda"),
    ("device of another kind", search_main, search("--device", "meta"), "--device meta: not a device to train on"),
    ("in-memory storage", search_main, search("--storage", "sqlite://"), "in-memory database: a study must persist"),
    (
        "named in-memory storage",
        search_main,
        search("--storage", "sqlite:///:memory:"),
        "in-memory database: a study must persist",
    ),
    (
        "in-memory storage with a driver",
        search_main,
        search("--storage", "sqlite+pysqlite:///:memory:"),
        "in-memory database",
    ),
    ("preset: enqueue a number", search_main, preset("enqueue-int.yaml"), "enqueue 5: give hierarchy lists"),
    ("preset: widths a mapping", search_main, preset("widths-map.yaml"), "widths {'a': 1}: give a list of whole"),
    ("preset: fractional epochs", search_main, preset("epochs-frac.yaml"), "epochs 1.5: not a whole number"),
    ("preset: fractional trials", search_main, preset("trials-frac.yaml"), "trials 1.5: not a whole number"),
    ("preset: boolean epochs", search_main, preset("epochs-bool.yaml"), "epochs True: not a number"),
    ("preset: list for a number", search_main, preset("epochs-list.yaml"), "epochs [1, 2]: not a number"),
    ("preset: boolean budget", search_main, preset("budget-bool.yaml"), "budget True: not a number"),
    ("preset: infinite lr", search_main, preset("lr-inf.yaml"), "lr inf: not a finite number"),
    ("preset: negative seed", search_main, preset("seed-neg.yaml"), "seed -3: out of range"),
    ("preset: number for a switch", search_main, preset("quiet-int.yaml"), "quiet 3: give true or false"),
    ("preset: unknown sampler", search_main, preset("sampler-bad.yaml"), "sampler 'cmaes': choose one of tpe"),
    ("preset: mapping for a name", search_main, preset("dataset-map.yaml"), "dataset {'x': 1}: give text"),
    ("preset: list for a name", search_main, preset("name-list.yaml"), "study_name ['a']: give text"),
    ("preset: binary file", search_main, preset("binary.yaml"), "cannot read it (not text)"),
    ("preset: deep nesting", search_main, preset("deep.yaml"), "nested too deeply to read"),
    ("export --out a folder for one file", export_main, [*EXPORT, "--out", "{tmp}/dir.yaml"], "a folder is there"),
    ("export --out under a file", export_main, [*EXPORT, "--out", "{tmp}/afile/c.yaml"], "afile is a file"),
    ("export --out folder a file", export_main, [*EXPORT, "--out", "{tmp}/afile"], "a file is there, not a folder"),
    ("report --out a folder", report_main, [*REPORT, "--out", "{tmp}/adir"], "--out {tmp}/adir: a folder is there"),
    ("report --out under a file", report_main, [*REPORT, "--out", "{tmp}/afile/r.html"], "afile is a file"),
    ("train --out a file", train_main, [*TRAIN, "--out", "{tmp}/afile"], "a file is there, not a folder"),
    ("train --out under a file", train_main, [*TRAIN, "--out", "{tmp}/afile/run"], "afile is a file"),
    (
        "train: widths too large to allocate",
        train_main,
        [*TRAIN, "--widths", "100000000,1,1,1"],
        "TiB to train, more than the",
    ),
    (
        "train: config widths too large",
        train_main,
        ["--config", "{tmp}/huge.yaml", "--out", "{tmp}/run", "--device", "cpu"],
        "use smaller --widths or --batch-size",
    ),
    (
        "train: too many units",
        train_main,
        ["--hierarchy", "200000,1,1,1", "--device", "cpu"],
        "a network of 200,003 units: at most 100,000",
    ),
    ("train: widths not numbers", train_main, [*TRAIN, "--widths", "8:x,8,16,16"], "integers separated by commas"),
    ("train: a zero lead width", train_main, [*TRAIN, "--widths", "0:8,8,16,16"], "give positive widths"),
    ("train: FC units not numbers", train_main, [*TRAIN, "--fc-units", "big"], "fc_units 'big' is not a comma"),
    ("train: a negative FC unit", train_main, [*TRAIN, "--fc-units", "-4"], "must have positive widths"),
    (
        "train: FC units after a 1x1 map",
        train_main,
        ["--hierarchy", "1,1,1,1,1", "--fc-units", "32", "--epochs", "1", "--device", "cpu"],
        "FC units need one more downsampling after the last stage",
    ),
    ("train: conv bias for resnet", train_main, [*TRAIN, "--conv-bias", "on"], "conv bias applies to the vgg"),
    (
        "train: local unit for vgg",
        train_main,
        [*TRAIN, "--family", "vgg", "--local-unit", "conv"],
        "--local-unit applies to the resnet family only",
    ),
    (
        "train: config FC unit of 0",
        train_main,
        ["--config", "{tmp}/fc-bad-config.yaml", "--out", "{tmp}/run"],
        "field schedule.fc_units[0]: must be at least 1, got 0",
    ),
    (
        "train: config lead widths short",
        train_main,
        ["--config", "{tmp}/lead-bad-config.yaml", "--out", "{tmp}/run"],
        "field schedule.lead_widths: needs one list per stage (3)",
    ),
    ("search: a bad FC unit", search_main, search("--fc-units", "-5"), "must have positive widths"),
    ("train: a 7x7 first conv for resnet", train_main, [*TRAIN, "--first-conv", "7x7s2"], "applies to the vgg family"),
    ("preset: FC units a mapping", search_main, preset("fc-list.yaml"), "fc_units {'a': 1}: give a list of whole"),
    ("inspect: too many units", inspect_main, ["--hierarchy", "1000000000,1,1,1"], "at most 100,000 can be"),
    (
        "train: config aux_convs huge",
        train_main,
        ["--config", "{tmp}/aux-config.yaml", "--out", "{tmp}/run", "--device", "cpu"],
        "field recipe.aux_convs: must be from 0 to 32, got 1000000",
    ),
    (
        "train: config precision fp8",
        train_main,
        ["--config", "{tmp}/fp8-config.yaml", "--out", "{tmp}/run", "--device", "cpu"],
        "field recipe.precision: must be one of auto, fp32, bf16, got 'fp8'",
    ),
    (
        "train: a YAML alias bomb in the provenance",
        train_main,
        ["--config", "{tmp}/bomb-config.yaml", "--out", "{tmp}/run", "--device", "cpu"],
        "field provenance: holds more than 10,000 values",
    ),
    (
        "train: mnist files of three images",
        train_main,
        ["--dataset", "mnist", "--data-root", "{tmp}/mnist3", *TRAIN],
        "MNIST under {tmp}/mnist3 holds 3 training image(s) of 3 of its 10 classes: the files are incomplete",
    ),
    (
        "train: mnist files too few to hold out a validation split",
        train_main,
        ["--dataset", "mnist", "--data-root", "{tmp}/mnist10", *TRAIN],
        "validation fraction 0.1 (--val-fraction) holds out no image of class 0 (1 training images of it): use "
        "--val-fraction 0.5 or more",
    ),
    (
        "search: mnist files too few to hold out a validation split",
        search_main,
        search("--dataset", "mnist", "--data-root", "{tmp}/mnist10"),
        "validation fraction 0.2 (--val-fraction) holds out no image of class 0 (1 training images of it): use "
        "--val-fraction 0.5 or more",
    ),
    ("train: deeply nested config", train_main, ["--config", "{tmp}/deep-config.yaml"], "nested too deeply"),
    (
        "train: config seed",
        train_main,
        ["--config", "{tmp}/seed-config.yaml", "--out", "{tmp}/run"],
        "field recipe.seed: must be from 0 to 4294967295, got -1",
    ),
    ("train: negative seed", train_main, [*TRAIN, "--seed", "-1"], "--seed -1: out of range"),
    ("train: unknown device", train_main, [*TRAIN, "--device", "banana"], "--device banana: not a device"),
    ("train: infinite lr", train_main, [*TRAIN, "--lr", "inf"], "--lr inf: not a finite number"),
    # 2. Refusals that came after the study was created: now before the database is touched.
    (
        "space too large",
        search_main,
        search("--budget", "3000"),
        "has 7.5e8 feasible lists; at most 200,000 can be searched: lower --budget or --stages",
    ),
    (
        "prefix store size nan",
        search_main,
        search("--mode", "sequential", "--prefix-store-gb", "nan"),
        "--prefix-store-gb nan: not a finite number: use a number > 0, or --prefix-store off",
    ),
    ("prefix store size negative", search_main, search("--prefix-store-gb", "-1"), "--prefix-store-gb -1.0: out of"),
    ("prefix store size infinite", search_main, search("--prefix-store-gb", "inf"), "--prefix-store-gb inf: not a"),
    ("preset: prefix store size nan", search_main, preset("gb-nan.yaml"), "prefix_store_gb nan: not a finite"),
    ("artifact dir a file", search_main, search("--artifact-dir", "{tmp}/afile"), "--artifact-dir {tmp}/afile: a"),
    ("artifact dir under a file", search_main, search("--artifact-dir", "{tmp}/afile/a"), "afile is a file"),
    (
        "prefix store a file",
        search_main,
        search("--mode", "sequential", "--prefix-store", "{tmp}/afile"),
        "--prefix-store {tmp}/afile: a file is there",
    ),
    ("heartbeat 0", search_main, search("--heartbeat", "0"), "--heartbeat 0: out of range: use a whole number >= 1"),
    ("storage under a file", search_main, search("--storage", "sqlite:///{tmp}/afile/s.db"), "afile is a file"),
    ("storage a folder", search_main, search("--storage", "sqlite:///{tmp}/adir"), "a folder is there"),
    ("journal under a file", search_main, search("--storage", "{tmp}/afile/s.log"), "--storage {tmp}/afile/s.log"),
    # 3. Spaces too large to search: counted, never enumerated, refused with the count.
    ("budget 100000", search_main, search("--budget", "100000"), "has 2.8e13 feasible lists; at most 200,000"),
    ("budget 10**30", search_main, search("--budget", str(10**30)), "feasible lists; at most 200,000 can be"),
    (
        "budget 150000 in 2 stages",
        search_main,
        search("--budget", "150000", "--stages", "2", "--constraint", "none"),
        "a network of 150,000 units: at most 100,000",
    ),
    # 4. Numbers out of range, from a flag or a preset alike.
    ("epochs 0", search_main, search("--epochs", "0"), "--epochs 0: out of range: use a whole number >= 1"),
    ("preset: epochs 0", search_main, preset("epochs-zero.yaml"), "epochs-zero.yaml: epochs 0: out of range"),
    ("train limit 0", search_main, search("--train-limit", "0"), "--train-limit 0: out of range"),
    ("train limit negative", search_main, search("--train-limit", "-5"), "--train-limit -5: out of range"),
    ("trials negative", search_main, search("--trials", "-1"), "--trials -1: out of range: use a whole number >= 1"),
    ("trials 0", search_main, search("--trials", "0"), "--trials 0: out of range"),
    ("timeout negative", search_main, search("--timeout", "-1"), "--timeout -1.0: out of range: use a number > 0"),
    ("timeout nan", search_main, search("--timeout", "nan"), "--timeout nan: not a finite number"),
    ("timeout infinite", search_main, search("--timeout", "inf"), "or leave --timeout out for no limit"),
    ("lr infinite", search_main, search("--lr", "inf"), "--lr inf: not a finite number: use a number > 0"),
    ("lr nan", search_main, search("--lr", "nan"), "--lr nan: not a finite number"),
    ("lr negative", search_main, search("--lr", "-1"), "--lr -1.0: out of range"),
    ("dropout 1.5", search_main, search("--dropout", "1.5"), "--dropout 1.5: out of range: use a number >= 0 and < 1"),
    ("dropout negative", search_main, search("--dropout", "-0.1"), "--dropout -0.1: out of range"),
    ("heartbeat negative", search_main, search("--heartbeat", "-1"), "--heartbeat -1: out of range"),
    ("pruner startup negative", search_main, search("--pruner-startup", "-1"), "--pruner-startup -1: out of range"),
    ("max params: no list within", search_main, search("--max-params", "10"), "no list of the space is within"),
    ("max params not an amount", search_main, search("--max-params", "lots"), "--max-params lots: not an amount"),
    ("max memory in counts", search_main, search("--max-memory", "2X"), "--max-memory 2X: not an amount"),
    ("val fraction zero", search_main, search("--val-fraction", "0"), "--val-fraction 0.0: out of range"),
    ("val fraction too big", search_main, search("--val-fraction", "0.7"), "--val-fraction 0.7: out of range"),
    (
        "batch not a number",
        search_main,
        search("--batch", "many"),
        "--batch many: not a number: use a whole number >= 1",
    ),
    ("confirm not a number", search_main, search("--confirm", "three"), "--confirm three: not a number: use a whole"),
    ("confirm negative", search_main, search("--confirm", "-1"), "--confirm -1: out of range"),
    ("confirm seeds zero", search_main, search("--confirm-seeds", "0"), "--confirm-seeds 0: out of range"),
    (
        "confirm seeds past 2**32",
        search_main,
        search("--confirm-seeds", str(2**32 + 5)),
        f"--confirm-seeds {2**32 + 5}: out of range: use a whole number >= 1 and <= {2**32 - 1}",
    ),
    (
        "confirm seeds that would wrap onto the search's seed",
        search_main,
        search("--seed", str(2**32 - 2), "--confirm", "2", "--confirm-seeds", "3"),
        f"the confirmation seeds {2**32 - 1}..{2**32 + 1} pass the largest seed",
    ),
    (
        "objectives unknown cost",
        search_main,
        search("--objectives", "accuracy,size"),
        "--objectives accuracy,size: unknown objective 'size'",
    ),
    (
        "objectives without accuracy",
        search_main,
        search("--objectives", "params"),
        "--objectives params: the first objective is accuracy",
    ),
    (
        "dominance pruner without costs",
        search_main,
        search("--pruner", "dominance"),
        "--pruner dominance judges accuracy at no greater cost: give the costs with --objectives",
    ),
    # 6. Values that were read as something else, or failed late (issue 28).
    ("empty widths", search_main, search("--widths", ""), "--widths '': empty: give a list, e.g. 16,32,64,128"),
    ("blank widths", search_main, search("--widths", " , "), "--widths ' , ': empty"),
    ("empty objectives", search_main, search("--objectives", ""), "--objectives '': empty: give a list"),
    ("empty enqueue", search_main, search("--enqueue", "1,1,2,4", "--enqueue", ""), "--enqueue '': empty"),
    ("empty FC units", search_main, search("--fc-units", ""), "--fc-units '': empty: give a list, e.g. 1024, or none"),
    ("empty milestones", search_main, search("--lr-milestone-epochs", ""), "give epochs as whole numbers"),
    ("train: empty widths", train_main, [*TRAIN, "--widths", ""], "--widths '': empty"),
    ("train: empty hierarchy", train_main, ["--hierarchy", "", "--device", "cpu"], "empty hierarchy: give at least"),
    ("inspect: empty FC units", inspect_main, ["--fc-units", ""], "--fc-units '': empty"),
    ("FC units 0", search_main, search("--fc-units", "0"), "FC units [0] must have positive widths"),
    ("train: FC units 0", train_main, [*TRAIN, "--fc-units", "0"], "FC units [0] must have positive widths"),
    (
        "a million confirmation seeds",
        search_main,
        search("--confirm-seeds", "1000000"),
        "--confirm-seeds 1000000: 1,000,000 training runs for each confirmed list; at most 100 seeds per list",
    ),
    (
        "a million seeds for 3 lists",
        search_main,
        search("--confirm", "3", "--confirm-seeds", "1000000"),
        "a plan of 3 lists x 1,000,000 seeds is 3,000,000 training runs",
    ),
    (
        "val fraction with no image of a class",
        search_main,
        search("--val-fraction", "0.0001"),
        "holds out no image of class 8 (139 training images of it): use --val-fraction 0.0036 or more",
    ),
    (
        "train: val fraction with no image of a class",
        train_main,
        [*TRAIN, "--val-fraction", "0.001"],
        "use --val-fraction 0.0036 or more",
    ),
    (
        "budget below stages: the true smallest",
        search_main,
        search("--budget", "3"),
        "the smallest budget with a feasible list is 6: use --budget 6 or more",
    ),
    (
        "budget below stages without a constraint",
        search_main,
        search("--budget", "3", "--constraint", "none"),
        "the smallest budget with a feasible list is 4",
    ),
    (
        "constant FLOPs objective",
        search_main,
        search("--objectives", "accuracy,flops"),
        "--objectives accuracy,flops: flops is the same for every list of the space (",
    ),
    (
        "constant FLOPs among costs",
        search_main,
        search("--preset", "digits-quick", "--objectives", "accuracy,params,flops"),
        "leave it out (--objectives accuracy,params)",
    ),
    ("stages 0", search_main, search("--stages", "0"), "--stages 0: out of range"),
    ("shallow stages too many", search_main, search("--shallow-stages", "9"), "--shallow-stages 9 with --stages 4"),
    ("shallow stages negative", search_main, search("--shallow-stages", "-1"), "--shallow-stages -1: out of range"),
    ("batch size 0", search_main, search("--batch-size", "0"), "--batch-size 0: out of range"),
    ("workers 0", search_main, search("--workers", "0"), "--workers 0: out of range"),
    ("batch 0", search_main, search("--batch", "0"), "--batch 0: out of range"),
    ("export top 0", export_main, [*EXPORT, "--top", "0", "--out", "{tmp}/c"], "--top K needs K >= 1"),
    ("export trial negative", export_main, [*EXPORT, "--trial", "-1", "--out", "{tmp}/c"], "--trial N needs"),
    ("train epochs 0", train_main, [*TRAIN, "--epochs", "0"], "--epochs 0: out of range"),
    ("train batch size 0", train_main, [*TRAIN, "--batch-size", "0"], "--batch-size 0: out of range"),
    ("train dropout 1", train_main, [*TRAIN, "--dropout", "1"], "--dropout 1.0: out of range"),
    # The reference code's options (recipe fields): out of range, or not for this recipe.
    ("train momentum with adam", train_main, [*TRAIN, "--momentum", "0.9"], "momentum applies to the sgd optimizer"),
    ("train momentum 1", train_main, [*TRAIN, "--optimizer", "sgd", "--momentum", "1"], "--momentum 1.0: out of range"),
    ("train cutout negative", train_main, [*TRAIN, "--cutout", "-1"], "--cutout -1: out of range"),
    ("train label smoothing 1", train_main, [*TRAIN, "--label-smoothing", "1"], "--label-smoothing 1.0: out of"),
    ("train milestones text", train_main, [*TRAIN, "--lr-milestone-epochs", "3,x"], "give epochs as whole numbers"),
    ("train milestones order", train_main, [*TRAIN, "--lr-milestone-epochs", "3,2"], "in increasing order"),
    ("train digits reference norm", train_main, [*TRAIN, "--normalisation", "reference"], "the reference's CIFAR"),
    (
        "train --config --optimizer",
        train_main,
        ["--config", "{tmp}/good.yaml", "--optimizer", "sgd"],
        "--optimizer cannot be",
    ),
    ("search unknown optimizer", search_main, search("--optimizer", "rmsprop"), "invalid choice: 'rmsprop'"),
    ("search weight decay negative", search_main, search("--weight-decay", "-1"), "--weight-decay -1.0: out of"),
    ("search momentum with adam", search_main, search("--momentum", "0.5"), "momentum applies to the sgd optimizer"),
    # 5. Usage errors of every command.
    ("search: unknown flag", search_main, search("--bogus"), "unrecognized arguments: --bogus"),
    ("export: no --out", export_main, EXPORT, "the following arguments are required: --out"),
    ("export: --top not a number", export_main, [*EXPORT, "--top", "x", "--out", "{tmp}/c"], "invalid int value"),
    ("report: unknown flag", report_main, [*REPORT, "--bogus"], "unrecognized arguments: --bogus"),
    ("inspect: flag without value", inspect_main, ["--hierarchy"], "expected one argument"),
    ("inspect: unknown family", inspect_main, ["--family", "vit"], "invalid choice: 'vit'"),
    ("train: epochs not a number", train_main, [*TRAIN, "--epochs", "x"], "invalid int value: 'x'"),
]
if sys.platform.startswith("linux"):
    CASES += [
        ("export --out unwritable", export_main, [*EXPORT, "--out", f"{NOWHERE}/c.yaml"], "cannot write there"),
        ("report --out unwritable", report_main, [*REPORT, "--out", f"{NOWHERE}/r.html"], "cannot write there"),
        ("train --out unwritable", train_main, [*TRAIN, "--out", f"{NOWHERE}/run"], "cannot write there"),
        ("artifact dir unwritable", search_main, search("--artifact-dir", NOWHERE), "--artifact-dir /proc/lwl-no"),
        ("storage unwritable", search_main, search("--storage", f"sqlite:///{NOWHERE}/s.db"), "cannot write there"),
    ]


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return list(con.iterdump())


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def study_db(tmp_path_factory) -> Path:
    from lwl.search import parse_search_flags, prepare_study

    root = tmp_path_factory.mktemp("bad-input")
    db = root / "s.db"
    assert (
        search_main([*TINY, "--budget", "8", "--trials", "1", "--storage", f"sqlite:///{db}", "--study-name", "s"]) == 0
    )
    settings, _ = parse_search_flags([*TINY, "--budget", "8"])  # a study with no trial ("--trials 0" is refused)
    prepare_study(settings, f"sqlite:///{db}", "empty", sampler="tpe", pruner="none", seed=0)
    return db


@pytest.mark.parametrize(("command", "args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    study_db, tmp_path, monkeypatch, capsys, command, args, message
):
    for name, content in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    (tmp_path / "adir").mkdir()
    (tmp_path / "dir.yaml").mkdir()
    cwd = tmp_path / "cwd"  # the default storage, studies/NAME.db, and default outputs would land here
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    new = tmp_path / "studies" / "new.db"
    argv = [a.format(db=f"sqlite:///{study_db}", new=f"sqlite:///{new}", tmp=tmp_path) for a in args]
    before, listed, beside = _dump(study_db), _listing(tmp_path), _listing(study_db.parent)
    with pytest.raises(SystemExit) as info:
        command(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert message.replace("{tmp}", str(tmp_path)) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert SECRET not in err
    assert _dump(study_db) == before
    assert _listing(tmp_path) == listed, "a refused command created files or folders"
    assert _listing(study_db.parent) == beside


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "from lwl.models.commands import inspect_main as m; m(['--preset', 'resnet18'])"],
        ["-c", "from lwl.models.commands import inspect_main as m; m(['--help'])"],
        ["-m", "lwl.search", "--help"],
    ],
    ids=["inspect", "inspect --help", "search --help"],
)
@pytest.mark.slow
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, argv):
    """`lwl-inspect --preset resnet18 | head -1`: the pipe is closed before the command writes; no traceback."""
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ)
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone: the command's first write or flush fails with EPIPE
    try:
        _, err_bytes = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err = err_bytes.decode()
    assert err == "", err
    assert proc.returncode in (0, 1), err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- refused resumes
# A finished run's checkpoint, damaged; `lwl-train --config C --out RUN --resume` must refuse it in one line, exit 2,
# and leave every file of the run byte-identical (a refused resume once turned a finished run's metrics.json from
# `complete` with test accuracies to `running` with `test: null`).
TINY_CONFIG = (
    "schedule:\n  hierarchy: [1, 1, 1, 1]\n  family: resnet\n  widths: [4, 8, 8, 16]\n"
    "recipe:\n  dataset: digits\n  epochs: 1\n  train_limit: 128\n"
)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _first(mapping):
    return next(iter(mapping))


def _set(path, value):
    """A damage: set the payload's field at `path` (keys and indices) to `value` (a function of the old value)."""

    def damage(payload):
        *head, last = path
        node = payload
        for key in head:
            node = node[key]
        node[last] = value(node[last])

    return damage


def _model_key(payload):
    return _first(payload["trainer"]["model"])


RESUME_CASES = [
    (
        "a tensor of another shape",
        lambda p: p["trainer"]["model"].update({_model_key(p): torch.zeros(3)}),
        "model tensor 'units.0.body.0.weight' is a torch.float32 tensor of shape [3]",
    ),
    (
        "a tensor of another type",
        lambda p: p["trainer"]["model"].update({_model_key(p): p["trainer"]["model"][_model_key(p)].double()}),
        "is a torch.float64 tensor",
    ),
    (
        "the model of another network",
        _set(("trainer", "model"), lambda m: {k.replace("units.3", "units.9"): v for k, v in m.items()}),
        "does not hold this network's tensors",
    ),
    (
        "a damaged RNG state",
        _set(("trainer", "rng", "data"), lambda t: t[:7]),
        "data random stream is not a random generator's state",
    ),
    (
        "a damaged dropout RNG list",
        _set(("trainer", "rng", "dropout"), lambda gens: gens[:1]),
        "dropout random streams has 1 entries, not 4",
    ),
    (
        "a damaged optimiser state",
        _set(("trainer", "optimizers", 0, "state", 0, "exp_avg"), lambda t: torch.zeros(2)),
        "optimiser 0 'exp_avg' has shape [2]",
    ),
    (
        "optimisers missing",
        _set(("trainer", "optimizers"), lambda opts: opts[:2]),
        "optimizers has 2 entries, not 5",
    ),
    ("a unit position past the end", _set(("trainer", "position", "unit"), lambda u: 99), "position.unit is 99"),
    ("a string where a mapping belongs", _set(("trainer", "rng"), lambda r: "abc"), "rng is str, not a mapping"),
    ("a list where the config belongs", _set(("config",), lambda c: [1, 2]), "its config is list, not a mapping"),
    (
        "a malformed history",
        _set(("trainer", "history"), lambda h: [{"step": "x"}]),
        "history record 0 step is 'x', not a whole number",
    ),
    ("a position that is text", _set(("trainer", "position"), lambda p: "unit 3"), "position is str, not a mapping"),
    (
        "a checkpoint of another network shape",
        _set(("trainer", "schedule", "widths"), lambda w: [8, 8, 8, 16]),
        "the checkpoint was written for schedule.widths",
    ),
    ("a malicious pickle", None, "refused unread, as loading it could run code"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    (root / "c.yaml").write_text(TINY_CONFIG)
    assert train_main(["--config", str(root / "c.yaml"), "--out", str(root / "run"), "--device", "cpu"]) == 0
    assert json.loads((root / "run" / "metrics.json").read_text())["status"] == "complete"
    return root


@pytest.mark.parametrize(("damage", "message"), [c[1:] for c in RESUME_CASES], ids=[c[0] for c in RESUME_CASES])
def test_a_refused_resume_is_one_line_and_leaves_every_file_as_it_was(finished_run, tmp_path, capsys, damage, message):
    run = tmp_path / "run"
    shutil.copytree(finished_run / "run", run)
    checkpoint = run / "checkpoint.pt"
    if damage is None:
        torch.save({"format": 1, "trainer": _Evil()}, checkpoint)
    else:
        payload = torch.load(checkpoint, weights_only=True)
        damage(payload)
        torch.save(payload, checkpoint)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(SystemExit) as info:
        train_main(["--config", str(finished_run / "c.yaml"), "--out", str(run), "--resume", "--device", "cpu"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resuming_a_finished_run_keeps_its_results(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run / "run", run)
    before = json.loads((run / "metrics.json").read_text())
    assert train_main(["--config", str(finished_run / "c.yaml"), "--out", str(run), "--resume", "--device", "cpu"]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert after["status"] == "complete" and after["test"] == before["test"] and after["records"] == before["records"]
