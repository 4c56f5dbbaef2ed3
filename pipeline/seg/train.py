"""One training run through MMEngine's Runner: resumable work dir outside DVC's outputs, then the exported model.

The Runner works in `.dgsynth/wip/train-<run>-<fingerprint>/`; the fingerprint hashes the settings that shape the
weights, the seed, the manifests it reads and the code of `pipeline/seg`, so a killed run resumes from its
last checkpoint (every `checkpoint_every` iterations) and a run with other inputs starts over. The DVCLive curves
are written in the work dir too (DVC deletes the stage's outputs before a rerun), so a resumed run's curves hold
every iteration. When training ends, `models/seg/<run>/` gets `model.pth` (the weights only, teacher and
discriminator included) and `config.json` (the model and the input scale evaluation needs), the curves move to
`curves`, both atomically, and the work dir is removed. Under torchrun (MMEngine's `pytorch` launcher, gloo on CPU)
every process loads `batch` images of its own per iteration (so an iteration sees `batch` x processes images; DDP
averages the gradients) and rank 0 alone exports.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from pipeline import mm
from pipeline.atomic import atomic_dir, replace_dir
from pipeline.seg.config import runner_config
from pipeline.seg.data import synthetic_conditions
from pipeline.seg.settings import PAIRED, TrainSettings

CODE = Path(__file__).parent
NOT_RESULTS = ("checkpoint_every",)  # settings that never change the weights


def run_name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def fingerprint(settings: TrainSettings, seed: int, inputs: list[Path]) -> str:
    """16 hex digits of the sha256 of what determines the trained weights: the settings (the Runner config is built
    from them by this package's code), the seed, the input manifests (paths and bytes) and this package's code."""
    described = {k: v for k, v in asdict(settings).items() if k not in NOT_RESULTS}
    described |= {"seed": seed, "inputs": [str(path) for path in inputs]}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    for path in [*inputs, *sorted(CODE.rglob("*.py"))]:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:16]


def train(settings: TrainSettings, seed: int, source: list[Path], synthetic: Path | None, out: Path, curves: Path,
          wip: Path) -> str:  # fmt: skip
    """Train one model into `out` (and its loss curves into `curves`); return a one-line summary."""
    import pipeline.seg.methods  # noqa: F401  (registers the methods' segmentors and hooks)
    from mmengine.config import Config
    from mmengine.runner import Runner

    name = out.name
    paired = settings.method in PAIRED
    conditions = synthetic_conditions(str(synthetic)) if paired else []
    inputs = [*source, *([synthetic] if paired else [])]
    work = wip / f"train-{name}-{fingerprint(settings, seed, inputs)}"
    resumed = (work / "last_checkpoint").is_file()
    config = runner_config(settings, seed, work, [str(p) for p in source], str(synthetic), conditions, work / "curves",
                           resumed)  # fmt: skip
    for stale in wip.glob(f"train-{name}-*"):
        if stale != work:
            shutil.rmtree(stale, ignore_errors=True)  # under torchrun every rank cleans: another may be at it too
    mm.setup()
    mm.join_cpu_processes()
    mm.trust_checkpoints_under(work)
    start = time.perf_counter()
    runner = Runner.from_cfg(Config(config))
    runner.train()
    if runner.rank != 0:  # DDP keeps the parameters equal on every rank; buffers (BN statistics) are rank 0's
        return f"rank {runner.rank}: trained, rank 0 writes {out}"
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    export(model, config, settings.scale, conditions, out)
    replace_dir(work / "curves", curves)
    shutil.rmtree(work, ignore_errors=True)
    processes = f" on each of {runner.world_size} processes" if runner.world_size > 1 else ""
    return (f"wrote {out}: {settings.method}, {settings.arch}, {settings.iters} iterations of {settings.batch} images"
            f"{' (half synthetic)' if paired else ''}{processes}, seed {seed}"
            f"{' (resumed)' if resumed else ''}, {time.perf_counter() - start:.0f} s")


def export(model: torch.nn.Module, config: dict, scale: tuple[int, int], conditions: list[str], out: Path) -> None:
    """Write the weights and what evaluation needs (the model config, the input `scale`) into `out`, atomically."""
    with atomic_dir(out) as tmp:
        torch.save(model.state_dict(), tmp / "model.pth")
        described = {"model": config["model"], "scale": list(scale), "conditions": conditions}
        (tmp / "config.json").write_text(json.dumps(described, indent=1, default=list) + "\n")
