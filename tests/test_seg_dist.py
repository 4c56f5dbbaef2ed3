"""Training under MMEngine's launcher with 2 CPU processes (torchrun, gloo): `dgsynth train` exits cleanly, reports 2
processes, and rank 0 alone exports a finite model with the same weights' names as a 1-process run, its config, one
curves folder with every iteration, and removes the work dir. Each rank reads its own shard of the data: MMEngine's
InfiniteSampler draws one shuffled order from the shared seed and gives rank r the indices r, r + world, ...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pipeline.manifest import read_manifest, write_manifest
from stages import data as data_stage
from stages.train import SYNTHETIC

pytestmark = pytest.mark.mm
BIN = Path(sys.executable).parent
# batch 4: DIDEX's student sees the source half alone, and BN in the head's image pooling needs more than one image
TRAIN = {"source": {}, "naive": {}, "drsf": {}, "didex": {}, "diga": {},
         "common": {"arch": "tiny", "pretrained": None, "iters": 2, "batch": 4, "scale": [64, 32], "crop": [32, 32],
                    "lr": 0.001, "weight_decay": 0.0, "warmup": 1, "workers": 0, "checkpoint_every": 2}}  # fmt: skip
PARAMS = {"data": {"source": "src", "world": {"seed": 0, "height": 32, "width": 64},
                   "domains": {"src": {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 3}}}},
          "train": TRAIN}  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A git + DVC project with params.yaml, a 3-image world source domain and a synthetic manifest of its images
    under two conditions (one row unlabeled), committed (DVCLive needs a commit to start from)."""
    project = tmp_path_factory.mktemp("template")
    (project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        data_stage.run("src")
    rows = read_manifest(project / "data/domains/src/train.parquet").to_dict("records")
    synthetic = [dict(row, id=f"syn-{i}", domain="synthetic", condition=["fog/mist", "rain", "fog/mist"][i],
                      label=None if i == 1 else row["label"]) for i, row in enumerate(rows)]  # fmt: skip
    write_manifest(synthetic, project / SYNTHETIC)
    for command in (["git", "init", "-q"], ["git", "config", "user.name", "dgsynth tests"],
                    ["git", "config", "user.email", "tests@dgsynth.invalid"], [str(BIN / "dvc"), "init", "-q"],
                    ["git", "add", "-A"], ["git", "commit", "-q", "-m", "data"]):
        subprocess.run(command, cwd=project, check=True, capture_output=True, timeout=300)  # fmt: skip
    return project


def _train(template: Path, folder: Path, method: str, processes: int) -> subprocess.CompletedProcess:
    """`dgsynth train METHOD` in a copy of `template` at `folder`, under torchrun when `processes` > 1."""
    shutil.copytree(template, folder)
    launch = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", str(processes)] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes on a small machine
    return subprocess.run([*launch, str(BIN / "dgsynth"), "train", method, "--seed", "0"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _check_two_processes_like_one(template: Path, tmp_path: Path, method: str) -> None:
    single = _train(template, tmp_path / "single", method, 1)
    assert single.returncode == 0, single.stderr
    done = _train(template, tmp_path / "dist", method, 2)
    assert done.returncode == 0, done.stderr
    project, name = tmp_path / "dist", f"{method}-s0"
    summary = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert len(summary) == 1 and "on each of 2 processes" in summary[0], done.stdout
    assert "rank 1: " in done.stdout
    state = torch.load(project / "models/seg" / name / "model.pth", weights_only=True)
    expected = torch.load(tmp_path / "single/models/seg" / name / "model.pth", weights_only=True)
    assert state.keys() == expected.keys()
    finite = [key for key, value in state.items() if not value.is_floating_point() or value.isfinite().all()]
    assert set(state) - set(finite) <= {"prototypes"}  # DiGA's prototypes of classes never seen yet are NaN
    assert (project / "models/seg" / name / "config.json").is_file()
    assert not list((project / ".dgsynth/wip").glob("train-*"))
    assert [path.name for path in (project / "reports/train").iterdir()] == [name]
    steps = pd.read_csv(project / "reports/train" / name / "plots/metrics/loss.tsv", sep="\t")["step"].tolist()
    assert steps == [1, 2]


def test_drsf_trains_on_two_processes(template, tmp_path):
    _check_two_processes_like_one(template, tmp_path, "drsf")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["source", "naive", "didex", "diga"])
def test_method_trains_on_two_processes(template, tmp_path, method):
    _check_two_processes_like_one(template, tmp_path, method)
