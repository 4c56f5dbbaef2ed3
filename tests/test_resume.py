"""Training is reproducible on the CPU, for segmentation and detection: the same seed twice gives the same weights
(and the same scores), and a run killed with SIGKILL after a checkpoint, then resumed, ends with the weights of an
uninterrupted run. Every run is a Python process of its own, as under `dvc repro`, so per-process differences (hash
seeds, fresh RNGs, data-loader workers) count. Run as a script, this file trains one run (see `main`)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from test_seg import manifests  # noqa: F401  (the fixture: 3 world images with labels and boxes, and synthetic ones)

from pipeline.training.run import train
from pipeline.training.settings import load_settings
from stages.train import task_of

pytestmark = pytest.mark.mm
# workers 1 as in params.yaml (augmentations drawn in a loader process); batch 4: DIDEX's student sees the source
# half alone, and BN in the head's image pooling needs more than one image
COMMON = {"arch": "tiny", "pretrained": None, "iters": 5, "batch": 4, "scale": [64, 32], "crop": [32, 32], "lr": 0.001,
          "weight_decay": 0.01, "warmup": 1, "workers": 1, "checkpoint_every": 2}  # fmt: skip
SEED = 3


@HOOKS.register_module()
class KillAt(Hook):
    """SIGKILLs its own process at iteration `iteration` (from 1): after its training step and before its
    checkpoint (`when` = "iteration"), or in the middle of saving that checkpoint (`when` = "saving")."""

    def __init__(self, iteration: int, when: str):
        self.iteration, self.when = iteration, when

    def _kill(self, runner, when: str) -> None:
        if runner.iter + 1 == self.iteration and when == self.when:
            os.kill(os.getpid(), signal.SIGKILL)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._kill(runner, "iteration")

    def before_save_checkpoint(self, runner, checkpoint):
        self._kill(runner, "saving")


def main(spec: dict) -> None:
    """One training run of `spec` (task, method, source, synthetic, folder, kill) in this process; prints the
    summary."""
    task, folder = task_of(spec["task"]), Path(spec["folder"])
    settings = load_settings({"common": COMMON}, spec["method"], task.methods)
    if spec["kill"]:
        build = task.runner_config
        kill = dict(type="KillAt", iteration=spec["kill"][0], when=spec["kill"][1])
        task = dataclasses.replace(task, runner_config=lambda *args, **kwargs: (
            lambda config: dict(config, custom_hooks=[*config["custom_hooks"], kill]))(build(*args, **kwargs)))
    name = f"{spec['method']}-s{SEED}"
    print(train(task, settings, SEED, [Path(spec["source"])], Path(spec["synthetic"]), folder / "models" / name,
                folder / "curves", folder / "wip"))  # fmt: skip


def run(manifests: tuple[Path, Path], folder: Path, task: str, method: str, kill: tuple[int, str] | None = None):
    """Train in a process of its own with 2 threads: CPU kernels parallelise (and round) by thread count, and the
    nondeterminism that deterministic algorithms remove needs more than one thread."""
    spec = dict(task=task, method=method, source=str(manifests[0]), synthetic=str(manifests[1]), folder=str(folder),
                kill=kill)  # fmt: skip
    return subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})  # fmt: skip


def weights(folder: Path, method: str) -> dict[str, torch.Tensor]:
    return torch.load(folder / f"models/{method}-s{SEED}/model.pth", weights_only=True)


def assert_same_weights(state: dict, expected: dict) -> None:
    assert state.keys() == expected.keys()
    different = [key for key in state if not torch.equal(state[key], expected[key])]
    assert not different, f"{len(different)} of {len(state)} tensors differ, e.g. {different[:3]}"


def check_reproducible(manifests: tuple[Path, Path], tmp_path: Path, task: str, method: str, kill: tuple[int, str]) -> None:
    """Two uninterrupted runs (the same weights, tensor for tensor, and the same scores on the source images) and a
    run killed at `kill`, then resumed (the same weights)."""
    first, second, killed = tmp_path / "first", tmp_path / "second", tmp_path / "killed"
    for folder in (first, second):
        done = run(manifests, folder, task, method)
        assert done.returncode == 0, done.stderr
    assert_same_weights(weights(second, method), weights(first, method))
    scorer = importlib.import_module(f"pipeline.{task}.evaluate").scorer
    scores = [scorer(folder / f"models/{method}-s{SEED}")(manifests[0], 4, 0, "").scores
              for folder in (first, second)]  # fmt: skip
    assert scores[0] == scores[1] and all(math.isfinite(value) for value in scores[0].values())

    done = run(manifests, killed, task, method, kill)
    assert done.returncode == -signal.SIGKILL, f"{kill}: {done.stderr}"
    (work,) = (killed / "wip").iterdir()
    assert list(work.glob("iter_*.pth")) and not (killed / "models").exists()
    done = run(manifests, killed, task, method)
    assert done.returncode == 0 and "(resumed)" in done.stdout, f"{kill}: {done.stderr}"
    assert_same_weights(weights(killed, method), weights(first, method))


def random_kill() -> tuple[int, str]:
    """A random iteration after the first checkpoint, killed after its step or while saving its checkpoint."""
    iteration = random.randrange(COMMON["checkpoint_every"] + 1, COMMON["iters"] + 1)
    saving = iteration % COMMON["checkpoint_every"] == 0 and random.random() < 0.5
    return iteration, "saving" if saving else "iteration"


@pytest.mark.parametrize("method", ["didex", "drsf"])
def test_segmentation_is_reproducible_and_resumes_exactly(manifests, tmp_path, method):
    check_reproducible(manifests, tmp_path, "seg", method, random_kill())


@pytest.mark.slow  # about 90 s on 2 cores
def test_detection_is_reproducible_and_resumes_exactly(manifests, tmp_path):
    check_reproducible(manifests, tmp_path, "det", "drsf", random_kill())


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
