"""Benchmark: what the second core buys a default training run, in one process.

    python bench/threads.py [--iters 8] [--repeats 2]

For each task's source-only run with params.yaml's settings (the Runner built as training builds it, batches taken
first so that no loading is timed), runs `--iters` iterations on 2 threads and on 1, alternating, `--repeats` times:
median seconds per iteration and the CPU time the process used per second of wall time (200% is both cores busy).
The ratio says what running two runs side by side, one thread each, would do to their throughput, against one run on
both threads. Prints a table and writes reports/bench/threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from mmengine.config import Config
from mmengine.runner import Runner
from provenance import commit, device
from runs import bench_config

from pipeline import mm
from stages.train import task_of

OUT = Path("reports/bench/threads.json")
THREADS = (2, 1)


def measure(task_name: str, params: dict, iters: int, repeats: int) -> dict:
    """Seconds per iteration and CPU use per wall second of the task's source-only run on each thread count."""
    task = task_of(task_name)
    task.register()
    cfg = params[task.methods.section]
    source = Path("data/domains") / params["data"]["source"] / "train.parquet"
    seconds: dict[int, list[float]] = {n: [] for n in THREADS}
    usage: dict[int, list[float]] = {n: [] for n in THREADS}
    with tempfile.TemporaryDirectory() as work:
        config = bench_config(task, "source", cfg, source, work, iters=iters * 4, warmup=1, checkpoint_every=iters * 4,
                              workers=0)  # fmt: skip
        runner = Runner.from_cfg(Config(config))
        runner.train_loop  # noqa: B018  (the property builds the loop and its data loader)
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)  # as Runner.train does
        loader = iter(runner.train_dataloader)
        batches = [next(loader) for _ in range(iters)]
        runner.model.train_step(batches[0], optim_wrapper=runner.optim_wrapper)  # warm up
        for _ in range(repeats):
            for threads in THREADS:
                torch.set_num_threads(threads)
                cpu, wall = os.times(), time.perf_counter()
                for batch in batches:
                    runner.model.train_step(batch, optim_wrapper=runner.optim_wrapper)
                wall, cpu_end = time.perf_counter() - wall, os.times()
                seconds[threads].append(wall / iters)
                usage[threads].append((cpu_end.user + cpu_end.system - cpu.user - cpu.system) / wall)
    torch.set_num_threads(THREADS[0])
    per_iteration = {n: statistics.median(seconds[n]) for n in THREADS}
    return {"arch": cfg["common"]["arch"], "batch": cfg["common"]["batch"],
            "seconds_per_iteration": {str(n): s for n, s in per_iteration.items()},
            "cpu_per_wall_second": {str(n): statistics.median(usage[n]) for n in THREADS},
            "speed_up_of_2_threads": per_iteration[1] / per_iteration[2]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=8, help="iterations per pass")
    parser.add_argument("--repeats", type=int, default=2, help="passes per thread count")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    mm.setup()
    torch.set_flush_denormal(True)  # as training does (pipeline.training.run)
    rows = {task: measure(task, params, args.iters, args.repeats) for task in ("seg", "det")}
    print(f"\n{'task':<6}{'arch':<28}{'2 threads s':>13}{'cpu':>6}{'1 thread s':>12}{'cpu':>6}{'2 vs 1':>8}")
    for task, row in rows.items():
        two, one = row["seconds_per_iteration"]["2"], row["seconds_per_iteration"]["1"]
        cpu = row["cpu_per_wall_second"]
        print(f"{task:<6}{row['arch']:<28}{two:>13.3f}{cpu['2']:>6.0%}{one:>12.3f}{cpu['1']:>6.0%}"
              f"{row['speed_up_of_2_threads']:>7.2f}x")  # fmt: skip
    report = {"iters": args.iters, "repeats": args.repeats, "rows": rows, "command": "python bench/threads.py",
              "commit": commit(), "machine": device(cuda=False), "load_average": os.getloadavg()[0]}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
