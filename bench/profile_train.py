"""Benchmark: where a training iteration spends its time, per phase, for the default settings of a task.

    python bench/profile_train.py [--task seg|det] [--method source|naive|drsf] [--iters 30] [--warmup 10]

One Runner of `method` with params.yaml's settings (data loading in this process, `workers: 0`, so the loading is
timed), with timers around each phase of MMEngine's train step: the data loader's next batch, split into reading and
decoding the files (`LoadImageFromFile`, the annotation loaders) and the other transforms (resize, crop, flip, packing),
the data preprocessor (stacking, normalization), the forward pass with the losses, and the backward pass with the
optimizer step (the teacher methods need their hooks, which this loop does not run). Medians over the iterations
after `warmup`, and each phase's share of their sum. Then torch's profiler over `--op-iters` more iterations gives the
operators with the most CPU time of their own (forward and backward kernels, mmcv's RoIAlign and NMS), per
iteration and as a share of all operators' time. Writes reports/bench/profile-<task>.json. With `workers: 1` (the
default) the loading runs in a separate process, beside the compute, and only the part of it that compute does not
hide costs wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from mmengine.config import Config
from mmengine.runner import Runner
from provenance import device
from runs import bench_config

from pipeline import mm
from stages.train import task_of

LOADERS = ("LoadImageFromFile", "LoadAnnotations")  # mmseg's and mmdet's: read and decode the files
OPERATORS = 12  # rows of the operator table


class Timed:
    """Calls `function`, adding its wall time to `totals[phase]`."""

    def __init__(self, function, phase: str, totals: dict):
        self.function, self.phase, self.totals = function, phase, totals

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.totals[self.phase] += time.perf_counter() - start


def instrument(runner: Runner, totals: dict) -> None:
    """Timers around the loader's transforms, the preprocessor, the forward pass and the parameter update."""
    top = runner.train_dataloader.dataset  # a PairedDataset holds the source's and the synthetic images' datasets
    for dataset in (top.source, top.synthetic) if hasattr(top, "synthetic") else (top,):
        for transform in dataset.pipeline.transforms:
            phase = "load: read+decode" if type(transform).__name__.startswith(LOADERS) else "load: transforms"
            transform.transform = Timed(transform.transform, phase, totals)
    model = runner.model
    model.data_preprocessor.forward = Timed(model.data_preprocessor.forward, "preprocess", totals)
    model._run_forward = Timed(model._run_forward, "forward+loss", totals)
    runner.optim_wrapper.update_params = Timed(runner.optim_wrapper.update_params, "backward+step", totals)


def top_operators(step, iters: int, count: int) -> list[dict]:
    """The `count` operators with the most self CPU time over `iters` calls of `step`: seconds per call and share."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(iters):
            step()
    return operator_rows(profiler, iters, count)


def operator_rows(profiler, iters: int, count: int) -> list[dict]:
    """The `count` operators with the most self CPU time in a finished `profiler` run of `iters` steps."""
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"operator": e.key, "seconds": e.self_cpu_time_total / 1e6 / iters, "share": e.self_cpu_time_total / total}
            for e in events[:count]]  # fmt: skip


def print_operators(operators: list[dict]) -> None:
    """The operator table of `top_operators`."""
    print(f"{'operator (self CPU time)':<48}{'s':>8}{'share':>8}")
    for op in operators:
        print(f"{op['operator'][:47]:<48}{op['seconds']:>8.3f}{op['share']:>8.0%}")


def profile(task, method: str, cfg: dict, source: Path, iters: int, warmup: int,
            op_iters: int) -> tuple[dict[str, float], list[dict]]:  # fmt: skip
    """Median seconds per phase over the iterations after `warmup`, and the top operators over `op_iters` more."""
    per_iteration: list[dict] = []
    with tempfile.TemporaryDirectory() as work:
        config = bench_config(task, method, cfg, source, work, iters=iters + op_iters, warmup=1,
                              checkpoint_every=iters + op_iters, workers=0)  # fmt: skip
        runner = Runner.from_cfg(Config(config))
        runner.train_loop  # noqa: B018  (the property builds the loop and its data loader)
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)  # as Runner.train does
        totals: dict = defaultdict(float)
        instrument(runner, totals)
        batches = iter(runner.train_dataloader)
        for _ in range(iters):
            totals.clear()
            start = time.perf_counter()
            batch = Timed(next, "load", totals)(batches)
            runner.model.train_step(batch, optim_wrapper=runner.optim_wrapper)
            totals["total"] = time.perf_counter() - start
            per_iteration.append(dict(totals))
        operators = top_operators(lambda: runner.model.train_step(next(batches), optim_wrapper=runner.optim_wrapper),
                                  op_iters, OPERATORS)  # fmt: skip
    phases = [p for p in per_iteration[-1] if p not in ("total", "load")]
    out = {p: statistics.median(i.get(p, 0.0) for i in per_iteration[warmup:]) for p in ("total", "load", *phases)}
    out["load: other"] = max(0.0, out["load"] - out.get("load: read+decode", 0) - out.get("load: transforms", 0))
    return out, operators


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="seg", choices=("seg", "det"))
    parser.add_argument("--method", default="source")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--op-iters", type=int, default=5, help="iterations under torch's profiler")
    args = parser.parse_args()
    task = task_of(args.task)
    task.register()
    params = yaml.safe_load(Path("params.yaml").read_text())
    cfg = params[task.methods.section]
    mm.setup()
    torch.set_flush_denormal(True)  # as training does (pipeline.training.run)
    seconds, operators = profile(task, args.method, cfg,
                                 Path("data/domains") / params["data"]["source"] / "train.parquet", args.iters,
                                 args.warmup, args.op_iters)  # fmt: skip
    parts = ["load: read+decode", "load: transforms", "load: other", "preprocess", "forward+loss", "backward+step"]
    accounted = sum(seconds.get(p, 0.0) for p in parts)
    print(f"{args.task} {args.method}, {cfg['common']['arch']}, batch {cfg['common']['batch']}: "
          f"{seconds['total']:.3f} s per iteration (median of {args.iters - args.warmup})")  # fmt: skip
    print(f"{'phase':<20}{'s':>8}{'share':>8}")
    for part in parts:
        print(f"{part:<20}{seconds.get(part, 0.0):>8.3f}{seconds.get(part, 0.0) / accounted:>8.0%}")
    print()
    print_operators(operators)
    report = {"task": args.task, "method": args.method, "arch": cfg["common"]["arch"], "batch": cfg["common"]["batch"],
              "crop": cfg["common"]["crop"], "iters": args.iters, "warmup": args.warmup, "median_seconds": seconds,
              "share": {p: seconds.get(p, 0.0) / accounted for p in parts}, "op_iters": args.op_iters,
              "operators": operators, "machine": device(cuda=False),
              "load_average": os.getloadavg()[0]}  # fmt: skip
    out = Path(f"reports/bench/profile-{args.task}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
