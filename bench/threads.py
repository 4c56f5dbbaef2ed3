"""Benchmark: what the second core buys a default training run, in one process.

    python bench/threads.py [--iters 8] [--repeats 2]

For each task's source-only run with params.yaml's settings (the Runner built as training builds it, batches taken
first so that no loading is timed), runs `--iters` iterations on 2 threads and on 1, alternating, `--repeats` times:
median seconds per iteration and the CPU time the process used per second of wall time (200% is both cores busy).
Then two processes side by side, one thread each, each running the same iterations on its own Runner (started
together behind a barrier): their iterations per second together, against one process on 2 threads. Prints a table
and writes reports/bench/threads.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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


def prepared(task_name: str, params: dict, iters: int, work: str) -> tuple[Runner, list]:
    """The task's source-only Runner, built as training builds it, warmed up, and `iters` batches."""
    mm.setup()
    torch.set_flush_denormal(True)  # as training does (pipeline.training.run)
    task = task_of(task_name)
    task.register()
    cfg = params[task.methods.section]
    source = Path("data/domains") / params["data"]["source"] / "train.parquet"
    config = bench_config(task, "source", cfg, source, work, iters=iters * 4, warmup=1, checkpoint_every=iters * 4,
                          workers=0)  # fmt: skip
    runner = Runner.from_cfg(Config(config))
    runner.train_loop  # noqa: B018  (the property builds the loop and its data loader)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)  # as Runner.train does
    loader = iter(runner.train_dataloader)
    batches = [next(loader) for _ in range(iters)]
    runner.model.train_step(batches[0], optim_wrapper=runner.optim_wrapper)  # warm up
    return runner, batches


def one_of_two(task_name: str, params: dict, iters: int, barrier, seconds) -> None:
    """A side-by-side process: one thread, its own Runner, `iters` iterations after the barrier; its wall time."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        runner, batches = prepared(task_name, params, iters, work)
        barrier.wait()
        start = time.perf_counter()
        for batch in batches:
            runner.model.train_step(batch, optim_wrapper=runner.optim_wrapper)
        seconds.put(time.perf_counter() - start)


def side_by_side(task_name: str, params: dict, iters: int) -> float:
    """Iterations per second of two one-thread processes running together."""
    context = multiprocessing.get_context("spawn")
    barrier, seconds = context.Barrier(2), context.Queue()
    processes = [context.Process(target=one_of_two, args=(task_name, params, iters, barrier, seconds))
                 for _ in range(2)]  # fmt: skip
    for process in processes:
        process.start()
    walls = [seconds.get() for _ in processes]
    for process in processes:
        process.join()
    return 2 * iters / max(walls)


def measure(task_name: str, params: dict, iters: int, repeats: int) -> dict:
    """Seconds per iteration and CPU use per wall second of the task's source-only run on each thread count, and the
    throughput of two one-thread runs side by side."""
    seconds: dict[int, list[float]] = {n: [] for n in THREADS}
    usage: dict[int, list[float]] = {n: [] for n in THREADS}
    with tempfile.TemporaryDirectory() as work:
        runner, batches = prepared(task_name, params, iters, work)
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
    pair = side_by_side(task_name, params, iters)
    cfg = params[task_of(task_name).methods.section]["common"]
    return {"arch": cfg["arch"], "batch": cfg["batch"],
            "seconds_per_iteration": {str(n): s for n, s in per_iteration.items()},
            "cpu_per_wall_second": {str(n): statistics.median(usage[n]) for n in THREADS},
            "speed_up_of_2_threads": per_iteration[1] / per_iteration[2],
            "iterations_per_second": {"one run, 2 threads": 1 / per_iteration[2], "two runs, 1 thread each": pair},
            "side_by_side_gain": pair * per_iteration[2]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=8, help="iterations per pass")
    parser.add_argument("--repeats", type=int, default=2, help="passes per thread count")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    rows = {task: measure(task, params, args.iters, args.repeats) for task in ("seg", "det")}
    print(f"\n{'task':<6}{'arch':<28}{'2 threads s':>13}{'cpu':>6}{'1 thread s':>12}{'cpu':>6}{'2 vs 1':>8}"
          f"{'2 runs x 1 thread':>19}")  # fmt: skip
    for task, row in rows.items():
        two, one = row["seconds_per_iteration"]["2"], row["seconds_per_iteration"]["1"]
        cpu = row["cpu_per_wall_second"]
        print(f"{task:<6}{row['arch']:<28}{two:>13.3f}{cpu['2']:>6.0%}{one:>12.3f}{cpu['1']:>6.0%}"
              f"{row['speed_up_of_2_threads']:>7.2f}x{row['side_by_side_gain']:>18.2f}x")  # fmt: skip
    report = {"iters": args.iters, "repeats": args.repeats, "rows": rows, "command": "python bench/threads.py",
              "commit": commit(), "machine": device(cuda=False), "load_average": os.getloadavg()[0]}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
