"""The DVC pipeline in a temporary git + DVC repo: `dvc repro` builds, a second run is a no-op, and a change to one
domain's parameters rebuilds only that domain and what reads it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {
    "data": {
        "source": "src", "targets": ["fog"], "world": {"seed": 0, "height": 48, "width": 96},
        "domains": {"src": {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 3, "val": 2}},
                    "fog": {"format": "world", "city": "a", "condition": "fog", "splits": {"val": 2}}},
    },
    "gallery": {"split": "val", "images": 2, "tile_height": 24},
}  # fmt: skip


def _run(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    for part in ("pipeline", "stages", "dvc.yaml"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, repo / part)
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.name", "dgsynth tests")
    _run(repo, "git", "config", "user.email", "tests@dgsynth.invalid")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    return repo


def test_repro_builds_then_is_a_no_op_then_rebuilds_only_what_changed(repo: Path):
    first = _run(repo, "dvc", "repro")
    assert "Running stage 'data@src'" in first and "Running stage 'gallery'" in first
    assert len(pd.read_parquet(repo / "data/domains/src/train.parquet")) == 3
    assert (repo / "reports/data/gallery.png").stat().st_size > 0

    second = _run(repo, "dvc", "repro")
    assert "Running stage" not in second
    assert _run(repo, "dvc", "status").strip().endswith("up to date.")

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["domains"]["fog"]["splits"]["val"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    third = _run(repo, "dvc", "repro")
    ran = {line.split("'")[1] for line in third.splitlines() if line.startswith("Running stage")}
    assert ran == {"data@fog", "gallery"}
    assert len(pd.read_parquet(repo / "data/domains/fog/val.parquet")) == 3
