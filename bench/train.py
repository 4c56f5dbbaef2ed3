"""Benchmark: seconds per training iteration of every method of a task, relative to source-only, in one process.

    python bench/train.py [--task seg|det] [--iters 30] [--warmup 10] [--arch ARCH] [--variant METHOD:KEY=YAML ...]

Each method runs `iters` iterations of its Runner with the task's settings in params.yaml (`train` for seg, `det`
for det: same batch, crop and model) on the real manifests (data/domains/<source>, data/synthetic: run
`dvc repro synthesize` first); a hook records the wall time of every iteration, and the median after `warmup`
iterations is reported. DRSF's paper claims a marginal overhead: the `drsf` row shows ours; each `--variant`
(e.g. `drsf:use_mdsf=false`) adds a row of that method with one argument changed, to see where the time goes. Writes
reports/bench/train.json (seg) or reports/bench/train-det.json (det).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from pipeline import mm
from pipeline.paired import synthetic_conditions
from pipeline.training.settings import load_settings
from stages.train import task_of

OUT = {"seg": Path("reports/bench/train.json"), "det": Path("reports/bench/train-det.json")}
SYNTHETIC = Path("data/synthetic/train.parquet")


@HOOKS.register_module()
class IterationClock(Hook):
    """Wall time of every training iteration, in `times`."""

    times: list[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        IterationClock.times.append(time.perf_counter() - self.start)


def seconds_per_iteration(task, method: str, cfg: dict, source: Path, iters: int, warmup: int) -> float:
    settings = load_settings({**cfg, "common": {**cfg["common"], "iters": iters, "warmup": 1,
                                                "checkpoint_every": iters}}, method, task.methods)  # fmt: skip
    conditions = synthetic_conditions(str(SYNTHETIC))
    with tempfile.TemporaryDirectory() as work:
        config = task.runner_config(settings, 0, work, [str(source)], str(SYNTHETIC), conditions,
                                    Path(work) / "curves")  # fmt: skip
        config["custom_hooks"] = [*config["custom_hooks"], dict(type="IterationClock")]
        config["visualizer"] = dict(type=config["visualizer"]["type"])
        IterationClock.times = []
        Runner.from_cfg(Config(config)).train()
    return statistics.median(IterationClock.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--task", default="seg", choices=("seg", "det"))
    parser.add_argument("--arch", default=None, help="default: <section>.common.arch")
    parser.add_argument("--variant", action="append", default=[], help="METHOD:KEY=YAML, e.g. drsf:use_mdsf=false")
    args = parser.parse_args()
    task = task_of(args.task)
    task.register()
    params = yaml.safe_load(Path("params.yaml").read_text())
    cfg = params[task.methods.section]
    if args.arch:
        cfg["common"]["arch"] = args.arch
    source = Path("data/domains") / params["data"]["source"] / "train.parquet"
    mm.setup()
    times = {m: seconds_per_iteration(task, m, cfg, source, args.iters, args.warmup) for m in task.methods.all}
    for variant in args.variant:
        method, _, assignment = variant.partition(":")
        key, _, value = assignment.partition("=")
        changed = {**cfg, method: {**(cfg.get(method) or {}), key: yaml.safe_load(value)}}
        times[variant] = seconds_per_iteration(task, method, changed, source, args.iters, args.warmup)
    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else
        f"cpu ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)",
        "task": args.task, "arch": cfg["common"]["arch"], "batch": cfg["common"]["batch"], "crop": cfg["common"]["crop"],
        "iters": args.iters, "warmup": args.warmup,
        "seconds_per_iteration": times, "relative_to_source": {m: t / times["source"] for m, t in times.items()},
    }  # fmt: skip
    width = max(len(m) for m in times) + 2
    print(f"{'method':<{width}}{'s/iter':>9}{'x source':>10}")
    for method, seconds in times.items():
        print(f"{method:<{width}}{seconds:>9.3f}{seconds / times['source']:>10.2f}")
    OUT[args.task].parent.mkdir(parents=True, exist_ok=True)
    OUT[args.task].write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
