"""Every stage with a bad, wrongly typed or missing parameter (as `dvc exp run -S key=value` writes it: `abc` is the
string "abc", `-1` the integer -1) or a missing input: `dgsynth <stage>` prints the error line naming the params key
and its fix line, exits with code 2, and leaves the project as it was (no partial output)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_cli import dgsynth, snapshot
from test_dvc import PARAMS

# imported here, before CliRunner swaps stderr: the libraries' import-time warnings and log handlers (transformers,
# diffusers) would otherwise land in one case's stderr and keep a stream that a later case finds closed
import stages.evaluate  # noqa: F401
import stages.score  # noqa: F401
import stages.filter  # noqa: F401
import stages.synthesize  # noqa: F401
from pipeline.manifest import write_manifest

DELETE = object()


def edited(edits: dict) -> dict:
    """PARAMS with each dotted key of `edits` set to its value (or removed for DELETE)."""
    params = copy.deepcopy(PARAMS)
    for key, value in edits.items():
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return params


def manifest(path: str) -> None:
    """A one-row manifest at `path` (its image need not exist: the stages stop before reading it)."""
    row = dict(id="0", image="0.png", label="0.png", depth=None, boxes=[], dataset="world", domain="src", city="a",
               condition="clear", split="train", width=96, height=48, sha256="")  # fmt: skip
    write_manifest([row], path)


SEG_INPUTS = ("data/domains/src/train.parquet",)
PAIRED_INPUTS = (*SEG_INPUTS, "data/synthetic/train.parquet")
KEPT_INPUTS = (*SEG_INPUTS, "data/filtered/kept.parquet")
EVALUATED = ("data/domains/src/val.parquet", "data/domains/fog/val.parquet")

CASES = [
    # stage arguments, params edits, inputs present, what the error names (first line), what its fix says
    (["data", "src"], {"data.world.height": "abc"}, (), "data.world.height", "whole number"),
    (["data", "src"], {"data.world.seed": -1}, (), "data.world.seed", "whole number"),
    (["data", "src"], {"data": DELETE}, (), "no `data` section", "add a `data:` section"),
    (["gallery"], {"gallery.images": -1}, (), "gallery.images", "whole number"),
    (["gallery"], {"gallery.tile_height": "abc"}, (), "gallery.tile_height", "whole number"),
    (["gallery"], {"gallery.split": DELETE}, (), "gallery.split", "add `split`"),
    (["gallery"], {"data.targets": ["fog", "src"]}, (), "data.targets", "remove it"),
    (["prompts"], {"prompts.images": -1}, (), "prompts.images", "set e.g. 600"),
    (["prompts"], {"prompts.images": "abc"}, (), "prompts.images", "set e.g. 600"),
    (["prompts"], {"prompts.seed": "abc"}, (), "prompts.seed", "whole number"),
    (["prompts"], {"prompts.balance": "yes"}, (), "prompts.balance", "true or false"),
    (["prompts"], {"prompts.rare_exclude": "car"}, (), "prompts.rare_exclude", "list"),
    (["prompts"], {}, (), "data/domains/src/train.parquet", "dgsynth data"),
    (["generator"], {"generator.seed": "abc"}, (), "generator.seed", "whole number"),
    (["generator"], {"generator.sizes.vae_steps": "abc"}, (), "generator.sizes.vae_steps", "whole number"),
    (["generator"], {"generator.sizes.depth_steps": 0}, (), "generator.sizes.depth_steps", "whole number >= 1"),
    (["generator"], {"generator.sizes.lr": "abc"}, (), "generator.sizes.lr", "positive number"),
    (["generator"], {"generator.sizes.unet": 8}, (), "generator.sizes.unet", "list"),
    (["generator"], {"generator": DELETE}, (), "no `generator` section", "add a `generator:` section"),
    (["synthesize"], {"synthesize.steps": 0}, (), "synthesize.steps", "whole number >= 1"),
    (["synthesize"], {"synthesize.batch": "abc"}, (), "synthesize.batch", "whole number >= 1"),
    (["synthesize"], {}, (), "data/prompts.parquet", "dvc repro prompts"),
    (["filter"], {"filter.batch": "abc"}, (), "filter.batch", "positive integer"),
    (["filter"], {"filter.band": [0.9, 0.1]}, (), "filter.band", "0 <= low < high <= 1"),
    (["filter"], {}, (), "data/synthetic/train.parquet", "dvc repro synthesize"),
    (["filter"], {}, PAIRED_INPUTS, "models/seg/source-s0", "filter.model"),  # filter before train-source
    (["train", "source"], {"train.common.iters": "abc"}, SEG_INPUTS, "train.common.iters", "whole number"),
    (["train", "source"], {"train.common.lr": "abc"}, SEG_INPUTS, "train.common.lr", "positive number"),
    (["train", "source"], {"train.common.lr": "6e-5"}, SEG_INPUTS, "train.common.lr",
     "YAML reads 6e-5 as text: write 6e-05"),
    (["train", "source"], {"train.common.weight_decay": -1}, SEG_INPUTS, "train.common.weight_decay", "number >= 0"),
    (["train", "source"], {"train.common.workers": "abc"}, SEG_INPUTS, "train.common.workers", "whole number"),
    (["train", "source"], {"train.common.scale": "abc"}, SEG_INPUTS, "train.common.scale", "two whole numbers"),
    (["train", "source"], {"train.common.crop": [32, 0]}, SEG_INPUTS, "train.common.crop", "two whole numbers"),
    (["train", "source"], {"train.common.iters": DELETE}, SEG_INPUTS, "train.common: no `iters`", "train.common takes"),
    (["train", "source"], {"train": DELETE}, SEG_INPUTS, "no `train` section", "add a `train:` section"),
    (["train", "drsf"], {"train.drsf": {"foo": 1}}, KEPT_INPUTS, "train.drsf", "drsf takes: domain_groups, dfdr_levels"),
    (["train", "mt", "--task", "det"], {"det.mt": {"foo": 1}}, KEPT_INPUTS, "det.mt", "mt takes: ema_alpha"),
    (["train", "source"], {}, (), "data/domains/src/train.parquet", "dvc repro"),
    (["train", "naive"], {}, SEG_INPUTS, "data/filtered/kept.parquet", "dvc repro"),
    (["train", "source", "--task", "det"], {"det.common.iters": "abc"}, SEG_INPUTS, "det.common.iters", "whole number"),
    (["train", "source", "--task", "det"], {"det.common.lr": 0}, SEG_INPUTS, "det.common.lr", "positive number"),
    (["train", "drsf", "--task", "det"], {"det.common.batch": 3}, SEG_INPUTS, "det.common.batch", "use e.g. 4"),
    (["train", "source", "--task", "det"], {}, (), "data/domains/src/train.parquet", "dvc repro"),
    (["score", "source"], {"evaluate.batch": "abc"}, (), "evaluate.batch", "whole number"),
    (["score", "source"], {"evaluate.gallery": -1}, (), "evaluate.gallery", "whole number"),
    (["score", "source"], {"evaluate.split": 3}, (), "evaluate.split", "split name"),
    (["score", "source", "--task", "both"], {}, (), "--task", "use seg or det"),
    (["score", "source"], {}, (), "data/domains/src/val.parquet", "dvc repro"),
    (["score", "naive", "--task", "det"], {}, EVALUATED, "models/det/naive-s0/model.pth",
     "trains the models"),  # score before train
    (["evaluate"], {"evaluate.split": 3}, (), "evaluate.split", "split name"),
    (["evaluate"], {"train.seeds": "abc"}, EVALUATED, "train.seeds", "list of whole numbers"),
    (["evaluate"], {"det.methods": "drsf"}, EVALUATED, "det.methods", "list"),
    (["evaluate"], {}, (), "data/domains/src/val.parquet", "dvc repro"),
    (["evaluate"], {}, EVALUATED, "reports/scores/seg/source-s0", "scores the models"),  # evaluate before score
]  # fmt: skip


def case_id(case: tuple) -> str:
    """e.g. 'train source: train.common.iters='abc'', or 'filter: missing input (3 present)'."""
    args, edits, inputs = case[:3]
    changed = " ".join(f"{k}={'<deleted>' if v is DELETE else repr(v)}" for k, v in edits.items())
    return f"{' '.join(args)}: {changed or f'missing input ({len(inputs)} present)'}"


@pytest.mark.parametrize(("args", "edits", "inputs", "names", "fix"), CASES, ids=map(case_id, CASES))
def test_bad_parameter_or_missing_input(tmp_path, monkeypatch, args, edits, inputs, names, fix):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(edited(edits), sort_keys=False))
    for path in inputs:
        manifest(path)
    before = snapshot(tmp_path)
    result = dgsynth(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    (error,) = result.stderr.splitlines()  # one line: where, what and the fix, nothing else
    assert error.startswith("error: ") and names in error.split(" (fix: ")[0], error
    assert fix in error.split(" (fix: ", 1)[1], error
    assert snapshot(tmp_path) == before  # no output, no temporary sibling, no work-in-progress folder
