"""The DVC pipeline in a temporary git + DVC repo, on a tiny world and a tiny generator: `dvc repro` builds, a second
run is a no-op, a change to one domain's parameters rebuilds only that domain and what reads it, and going back to
synthesis settings already run restores the images (and the models trained on them) from DVC's run-cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())
PARAMS = {
    "profile": "default",
    "profiles": {"default": SHIPPED["profiles"]["default"]},
    "data": {
        "source": "src", "targets": ["fog"], "world": {"seed": 0, "height": 48, "width": 96},
        "domains": {"src": {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 3, "val": 2}},
                    "fog": {"format": "world", "city": "a", "condition": "fog", "splits": {"val": 2}}},
    },
    "gallery": {"split": "val", "images": 2, "tile_height": 24},
    "prompts": {"seed": 0, "split": "train", "images": 4, "quality": "A high quality photo;", "locations": ["germany"],
                "scenes": ["", "City"], "conditions": ["fog/mist", "sunny"], "classes": True, "balance": True,
                "rare_exclude": [], "negative": ""},
    "generator": {"seed": 0, "samples": 1,
                  "conditions": {"sunny": {"condition": "clear"}, "fog/mist": {"condition": "fog"}},
                  "sizes": {"images": 4, "height": 16, "width": 32, "batch": 4, "vae_steps": 2, "unet_steps": 2,
                           "depth_steps": 2, "lr": 0.001, "unet": [8, 16],
                           "unet_attention": [True, False], "vae": [8, 16], "vae_attention": False, "text_width": 32,
                           "text_layers": 1, "train_text": True}},
    "synthesize": {"model": "models/generator", "revision": None, "mode": "img2img", "height": 16, "width": 32,
                   "steps": 2, "guidance": 7.5, "strength": 1.0, "scheduler": "dpm++", "batch": 2, "dtype": "auto",
                   "compile": False, "shard_size": 2, "sheet": {"images": 1, "tile_height": 16}},
    "train": {"methods": ["naive"], "seeds": [0], "source": {}, "naive": {},
              "common": {"arch": "tiny", "pretrained": None, "iters": 2, "batch": 2, "scale": [64, 32],
                         "crop": [32, 32], "lr": 0.001, "weight_decay": 0.0, "warmup": 1, "workers": 0,
                         "checkpoint_every": 2, "augment": False}},
    "filter": {**SHIPPED["filter"], "batch": 2,
               "sheet": {"images": 2, "tile_height": 16}},
    "det": {"methods": ["drsf"], "seeds": [0], "source": {}, "drsf": {"image_levels": [3]},
            "common": {"arch": "tiny", "pretrained": None, "iters": 2, "batch": 2, "scale": [96, 48], "crop": [48, 48],
                       "lr": 0.001, "weight_decay": 0.0, "warmup": 1, "workers": 0, "checkpoint_every": 2}},
    "evaluate": {"split": "val", "batch": 2, "gallery": 1},
    "report": {"samples": 1, "title": "a tiny project"},
}  # fmt: skip


def _run(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def make_repo(repo: Path, params: dict) -> Path:
    """A git + DVC repo at `repo` with the project's code, dvc.yaml, what git tracks under models/ (as a clone has) and
    `params`, all committed."""
    tracked = _run(ROOT, "git", "ls-files", "models").split()
    for part in ("pipeline", "stages", "dvc.yaml", *tracked):
        (repo / part).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, repo / part)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.name", "dgsynth tests")
    _run(repo, "git", "config", "user.email", "tests@dgsynth.invalid")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "a project")  # DVCLive (training curves) needs a commit to start from
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("repo"), PARAMS)


def test_repro_builds_then_is_a_no_op_then_rebuilds_only_what_changed(repo: Path):
    first = _run(repo, "dvc", "repro")
    assert {"data@src", "gallery", "prompts", "generator", "synthesize", "train-source@0", "filter", "train@naive-0",
            "det-source@0", "det@drsf-0", *SCORED, "evaluate"} <= _ran(first)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics["seg"]) == {"source", "naive"} and set(metrics["seg"]["source"]) == {"src", "fog", "target_mean"}
    assert 0 <= metrics["seg"]["naive"]["fog"]["mIoU"] <= 100
    assert set(metrics["det"]) == {"source", "drsf"} and set(metrics["det"]["drsf"]) == {"src", "fog", "target_mean"}
    assert set(metrics["det"]["drsf"]["fog"]) == {"mAP50", "mAP50_std"}
    assert (repo / "reports/det/gallery/fog.png").stat().st_size > 0
    assert len(pd.read_parquet(repo / "data/domains/src/train.parquet")) == 3
    assert (repo / "reports/data/gallery.png").stat().st_size > 0

    second = _run(repo, "dvc", "repro")
    assert "Running stage" not in second
    assert _run(repo, "dvc", "status").strip().endswith("up to date.")

    _set(repo, "data", "domains", {**PARAMS["data"]["domains"], "fog": {**PARAMS["data"]["domains"]["fog"],
                                                                      "splits": {"val": 3}}})  # fmt: skip
    third = _run(repo, "dvc", "repro")
    assert _ran(third) == {"data@fog", "gallery", *SCORED, "evaluate", "report"}  # every model on the new fog
    assert len(pd.read_parquet(repo / "data/domains/fog/val.parquet")) == 3


SCORED = {"score-source@0", "score@naive-0", "score-det-source@0", "score-det@drsf-0"}  # one stage per model
# the paired runs, which read the synthetic images, and their scores: the source-only models stay
RETRAINED = {"train@naive-0", "det@drsf-0", "score@naive-0", "score-det@drsf-0"}


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def _set(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def test_synthesis_back_to_old_settings_comes_from_the_run_cache(repo: Path):
    _run(repo, "dvc", "repro")
    first = pd.read_parquet(repo / "data/synthetic/train.parquet")
    assert len(first) == 4 and (repo / "data/synthetic/shard-00001.parquet").is_file()
    _set(repo, "synthesize", "steps", 3)
    assert _ran(_run(repo, "dvc", "repro")) == {"synthesize", "filter", *RETRAINED, "evaluate", "report"}
    assert not pd.read_parquet(repo / "data/synthetic/train.parquet")["sha256"].equals(first["sha256"])
    _set(repo, "synthesize", "steps", 2)
    back = _run(repo, "dvc", "repro")
    assert "Stage 'synthesize' is cached - skipping run, checking out outputs" in back and not _ran(back)
    assert pd.read_parquet(repo / "data/synthetic/train.parquet")["sha256"].equals(first["sha256"])


def test_filter_ablation_keeps_everything_and_retrains_only_the_paired_runs(repo: Path):
    _run(repo, "dvc", "repro")
    # band [0, 0.9] within each condition: of n <= 10 images, the farthest alone lies above 0.9 (quantile 1)
    counts = pd.read_parquet(repo / "data/synthetic/train.parquet")["condition"].value_counts()
    expected = int(sum(n - 1 if n > 1 else n for n in counts))
    assert json.loads((repo / "reports/filter/metrics.json").read_text())["filter"]["kept"] == expected
    assert len(pd.read_parquet(repo / "data/filtered/kept.parquet")) == expected
    layout = json.loads((repo / "reports/synthesize/layout.json").read_text())["layout"]  # a DVC metric
    assert layout["images"] == 4 and set(layout["conditions"]) == set(counts.index) and layout["real_miou"] >= 0
    _set(repo, "filter", "enabled", False)
    assert _ran(_run(repo, "dvc", "repro")) == {"filter", *RETRAINED, "evaluate", "report"}
    assert len(pd.read_parquet(repo / "data/filtered/kept.parquet")) == 4
    _set(repo, "filter", "enabled", True)


def test_a_one_method_change_retrains_and_rescores_that_model_alone(repo: Path):
    _run(repo, "dvc", "repro")
    before = json.loads((repo / "reports/metrics.json").read_text())
    _set(repo, "det", "drsf", {"image_levels": [2]})
    ran = _ran(_run(repo, "dvc", "repro"))  # and the report, unless the tiny detector's scores stayed the same
    assert ran - {"report"} == {"det@drsf-0", "score-det@drsf-0", "evaluate"}
    after = json.loads((repo / "reports/metrics.json").read_text())
    assert after["seg"] == before["seg"] and after["det"]["source"] == before["det"]["source"]  # gathered, not rescored
    _set(repo, "det", "drsf", {"image_levels": [3]})
    assert not _ran(_run(repo, "dvc", "repro"))  # back: every stage from the run-cache
    assert json.loads((repo / "reports/metrics.json").read_text()) == before
