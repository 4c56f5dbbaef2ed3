"""Training under MMEngine's launcher with 2 CPU processes (torchrun, gloo), and as 2 "machines" of 2 processes each
(`torchrun --nnodes 2` on this host, the project folder standing in for a shared filesystem): `dgsynth train` exits
cleanly, reports the processes, and rank 0 alone exports a finite model with the same weights' names as a 1-process run, its config, one
curves folder with every iteration, and removes the work dir. Each rank reads its own shard of the data: MMEngine's
InfiniteSampler draws one shuffled order from the shared seed and gives rank r the indices r, r + world, ...
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
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
                    "lr": 0.001, "weight_decay": 0.0, "warmup": 1, "workers": 0, "checkpoint_every": 2,
                    "augment": False}}  # fmt: skip
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
                      label=None if i == 1 else row["label"], source_id=row["id"])
                 for i, row in enumerate(rows)]  # fmt: skip
    write_manifest(synthetic, project / SYNTHETIC, pa.schema([("source_id", pa.string())]))
    for command in (["git", "init", "-q"], ["git", "config", "user.name", "dgsynth tests"],
                    ["git", "config", "user.email", "tests@dgsynth.invalid"], [str(BIN / "dvc"), "init", "-q"],
                    ["git", "add", "-A"], ["git", "commit", "-q", "-m", "data"]):
        subprocess.run(command, cwd=project, check=True, capture_output=True, timeout=300)  # fmt: skip
    return project


def on_nodes(command: list[str], cwd: Path, nodes: int, processes: int) -> subprocess.CompletedProcess:
    """`command` under torchrun as `nodes` machines of `processes` ranks each, all on this host (static rendezvous at
    127.0.0.1) and in the folder `cwd`; the outputs of all nodes joined, the first non-zero exit code."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # several processes on a small machine
    launch = [str(BIN / "torchrun"), "--nnodes", str(nodes), "--nproc-per-node", str(processes),
              "--master-addr", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
    runs = [subprocess.Popen([*launch, "--node-rank", str(node), *command], cwd=cwd, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for node in range(nodes)]  # fmt: skip
    try:
        outputs = [run.communicate(timeout=600) for run in runs]
    finally:
        for run in runs:
            run.kill()
    code = next((run.returncode for run in runs if run.returncode), 0)
    return subprocess.CompletedProcess(command, code, *("".join(parts) for parts in zip(*outputs)))


def _train(template: Path, folder: Path, method: str, processes: int, nodes: int = 1) -> subprocess.CompletedProcess:
    """`dgsynth train METHOD` in a copy of `template` at `folder`, under torchrun when there is more than 1 process."""
    shutil.copytree(template, folder)
    command = [str(BIN / "dgsynth"), "train", method, "--seed", "0"]
    if nodes * processes == 1:
        return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    return on_nodes(command, folder, nodes, processes)


def _check_two_processes_like_one(template: Path, tmp_path: Path, method: str, nodes: int = 1) -> None:
    single = _train(template, tmp_path / "single", method, 1)
    assert single.returncode == 0, single.stderr
    done = _train(template, tmp_path / "dist", method, 2, nodes)
    assert done.returncode == 0, done.stderr
    project, name = tmp_path / "dist", f"{method}-s0"
    summary = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert len(summary) == 1 and f"on each of {2 * nodes} processes" in summary[0], done.stdout
    assert all(f"rank {rank}: " in done.stdout for rank in range(1, 2 * nodes)), done.stdout
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


@pytest.mark.parametrize("method", ["source", "naive", "didex", "diga"])
def test_method_trains_on_two_processes(template, tmp_path, method):
    _check_two_processes_like_one(template, tmp_path, method)


def test_source_trains_on_two_machines_of_two_processes(template, tmp_path):
    _check_two_processes_like_one(template, tmp_path, "source", nodes=2)
