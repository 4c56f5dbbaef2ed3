"""One training run of a task (segmentation or detection) through MMEngine's Runner: resumable work dir outside
DVC's outputs, then the exported model.

The Runner works in `.dgsynth/wip/train-<task>-<run>-<fingerprint>/`; the fingerprint hashes the settings that shape
the weights, the seed, the manifests it reads and the code (the task's package, this one, `pipeline/adapt`,
`pipeline/paired.py`), so a killed run resumes from its last checkpoint (every `checkpoint_every` iterations) and a
run with other inputs starts over. The DVCLive curves are written in the work dir too (DVC deletes the stage's
outputs before a rerun), so a resumed run's curves hold every iteration. When training ends, `models/<task>/<run>/`
gets `model.pth` (the weights only, teachers and discriminators included) and `config.json` (the model, the input
scale evaluation needs, the pseudo-domains and what the task adds, e.g. detection's class names), the curves move to
`curves`, both atomically, and the work dir is removed. Under torchrun (MMEngine's `pytorch` launcher, gloo on CPU) every process loads `batch` images of its own
per iteration (so an iteration sees `batch` x processes images; DDP averages the gradients) and rank 0 alone exports.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pipeline import mm
from pipeline.atomic import atomic_dir, replace_dir
from pipeline.errors import InputError
from pipeline.manifest import read_manifest
from pipeline.paired import synthetic_conditions
from pipeline.training.settings import Methods, TrainSettings

CODE = Path(__file__).parent
NOT_RESULTS = ("checkpoint_every",)  # settings that never change the weights


@dataclass(frozen=True)
class Task:
    """A training task: `name` (models/<name>/), its `methods`, its package `code` (fingerprinted), the Runner config
    builder (settings, seed, work dir, source manifests, synthetic manifest, conditions, curves, resume), `register`
    (imports its model classes), the manifest column every source row must fill, and `describe` (what config.json
    records besides the model, from the source manifests)."""

    name: str
    methods: Methods
    code: Path
    runner_config: Callable[..., dict]
    register: Callable[[], None]
    source_column: str
    describe: Callable[[list[Path]], dict] = field(default=lambda source: {})


def run_name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def fingerprint(task: Task, settings: TrainSettings, seed: int, inputs: list[Path]) -> str:
    """16 hex digits of the sha256 of what determines the trained weights: the settings (the Runner config is built
    from them by the task's code), the seed, the input manifests (paths and bytes) and the code."""
    described = {k: v for k, v in asdict(settings).items() if k not in NOT_RESULTS}
    described |= {"task": task.name, "seed": seed, "inputs": [str(path) for path in inputs]}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    code = sorted({*task.code.rglob("*.py"), *CODE.rglob("*.py"), *(CODE.parent / "adapt").rglob("*.py"),
                   CODE.parent / "paired.py"})  # fmt: skip
    for path in [*inputs, *code]:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:16]


def check_source(task: Task, manifest: Path) -> None:
    """Every source row must carry the task's ground truth (pixel labels, or boxes: an empty list is a negative)."""
    missing = read_manifest(manifest)[task.source_column].isna()
    if missing.any():
        what = "pixel label" if task.source_column == "label" else "box list"
        section = task.methods.section
        raise InputError(manifest, f"{int(missing.sum())} of {len(missing)} source rows have no {what}, e.g. row "
                         f"{int(missing.idxmax())}", "use a source domain with ground truth for this task "
                         f"(data.source), or leave the task out: `{section}.seeds: []` in params.yaml, or "
                         f"`dvc exp run -S '{section}.seeds=[]'`")  # fmt: skip


def train(task: Task, settings: TrainSettings, seed: int, source: list[Path], synthetic: Path | None, out: Path,
          curves: Path, wip: Path) -> str:  # fmt: skip
    """Train one model into `out` (and its loss curves into `curves`); return a one-line summary."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    task.register()
    for manifest in source:
        check_source(task, manifest)
    name = out.name
    paired = settings.method in task.methods.paired
    conditions = synthetic_conditions(str(synthetic)) if paired else []
    inputs = [*source, *([synthetic] if paired else [])]
    work = wip / f"train-{task.name}-{name}-{fingerprint(task, settings, seed, inputs)}"
    resumed = (work / "last_checkpoint").is_file()
    config = task.runner_config(settings, seed, work, [str(p) for p in source], str(synthetic), conditions,
                                work / "curves", resumed)  # fmt: skip
    for stale in wip.glob(f"train-{task.name}-{name}-*"):
        if stale != work:
            shutil.rmtree(stale, ignore_errors=True)  # under torchrun every rank cleans: another may be at it too
    mm.setup()
    mm.join_cpu_processes()
    mm.trust_checkpoints_under(work)
    if not torch.cuda.is_available():
        # x86 CPUs compute on subnormal floats many times slower: a tiny DIDEX run took 40 s instead of 8, with the
        # same weights to the last bit once they are flushed to zero
        torch.set_flush_denormal(True)
    start = time.perf_counter()
    runner = Runner.from_cfg(Config(config))
    runner.train()
    mm.leave_processes()
    if runner.rank != 0:  # DDP keeps the parameters equal on every rank; buffers (BN statistics) are rank 0's
        return f"rank {runner.rank}: trained, rank 0 writes {out}"
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    export(model, config, settings.scale, conditions, out, task.describe(source))
    replace_dir(work / "curves", curves)
    shutil.rmtree(work, ignore_errors=True)
    processes = f" on each of {runner.world_size} processes" if runner.world_size > 1 else ""
    return (f"wrote {out}: {settings.method}, {settings.arch}, {settings.iters} iterations of {settings.batch} images"
            f"{' (half synthetic)' if paired else ''}{processes}, seed {seed}"
            f"{' (resumed)' if resumed else ''}, {time.perf_counter() - start:.0f} s")


def export(model: torch.nn.Module, config: dict, scale: tuple[int, int], conditions: list[str], out: Path,
           extra: dict | None = None) -> None:  # fmt: skip
    """Write the weights and what evaluation needs (the model config, the input `scale`, the pseudo-domains and
    `extra`) into `out`, atomically."""
    with atomic_dir(out) as tmp:
        torch.save(model.state_dict(), tmp / "model.pth")
        described = {"model": config["model"], "scale": list(scale), "conditions": conditions, **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(described, indent=1, default=list) + "\n")
