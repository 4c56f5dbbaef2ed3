"""Benchmark: seconds per training iteration of every method of a task, relative to source-only, in one process.

    python bench/train.py [--task seg|det] [--iters 30] [--warmup 10] [--arch ARCH] [--variant METHOD:KEY=YAML ...]

Each method runs `iters` iterations of its Runner with the task's settings in params.yaml (`train` for seg, `det`
for det: same batch, crop and model) on the real manifests (data/domains/<source>, data/synthetic: run
`dvc repro synthesize` first); a hook records the wall time of every iteration, and the median after `warmup`
iterations is reported. DRSF's paper claims a marginal overhead: the `drsf` row shows ours; each `--variant`
(e.g. `drsf:use_mdsf=false`) adds a row of that method with one argument changed, to see where the time goes. Writes
reports/bench/train.json (seg) or reports/bench/train-det.json (det).

    python bench/train.py --amp [--task seg|det] [--iters 30] [--warmup 10] [--out FILE]

`--amp`: source-only iterations/s in fp32 against mixed precision (MMEngine's AmpOptimWrapper, bfloat16 where
torch.cuda.is_bf16_supported(), else float16), in one process. On CUDA it runs the paper profile's models with
random weights (`pretrained: null`) at the paper profile's batch, scale and crop: deeplabv2-r101 and segformer-b5
(seg), faster-rcnn-r101-c4 (det); on the CPU the default model at the default settings, in fp32 only (the AMP wrapper
needs a GPU). Writes reports/bench/train-amp.json or train-det-amp.json (on CUDA; elsewhere only to `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from provenance import device
from runs import bench_config

from pipeline import mm
from stages import merge
from stages.train import task_of

OUT = {"seg": Path("reports/bench/train.json"), "det": Path("reports/bench/train-det.json")}
AMP_OUT = {"seg": Path("reports/bench/train-amp.json"), "det": Path("reports/bench/train-det-amp.json")}
PAPER_ARCHS = {"seg": ("deeplabv2-r101", "segformer-b5"), "det": ("faster-rcnn-r101-c4",)}


@HOOKS.register_module()
class IterationClock(Hook):
    """Wall time of every training iteration, in `times`."""

    times: list[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        IterationClock.times.append(time.perf_counter() - self.start)


def optim_wrapper(config: dict, precision: str) -> dict:
    """The config's optimizer wrapper in `precision`: fp32 (OptimWrapper) or bfloat16/float16 (AmpOptimWrapper)."""
    wrapper = {k: v for k, v in config["optim_wrapper"].items() if k not in ("type", "dtype", "loss_scale")}
    if precision == "fp32":
        return {**wrapper, "type": "OptimWrapper"}
    return {**wrapper, "type": "AmpOptimWrapper", "dtype": precision}


def seconds_per_iteration(task, method: str, cfg: dict, source: Path, iters: int, warmup: int,
                          precision: str = "fp32") -> float:  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        config = bench_config(task, method, cfg, source, work, iters=iters, warmup=1, checkpoint_every=iters)
        config["optim_wrapper"] = optim_wrapper(config, precision)
        config["custom_hooks"] = [*config["custom_hooks"], dict(type="IterationClock")]
        IterationClock.times = []
        Runner.from_cfg(Config(config)).train()
    return statistics.median(IterationClock.times[warmup:])


def amp_bench(args: argparse.Namespace, task, params: dict, source: Path) -> None:
    """Source-only iterations/s of each model in fp32 and mixed precision (the paper's models on CUDA)."""
    cuda = torch.cuda.is_available()
    cfg = params[task.methods.section]
    if cuda:
        paper = merge(cfg, params["profiles"]["paper"][task.methods.section])
        cfg = {**paper, "common": {**paper["common"], "pretrained": None}}
    precisions = ["fp32"]
    if cuda:
        precisions.append("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    rows = []
    for arch in PAPER_ARCHS[args.task] if cuda else (args.arch or cfg["common"]["arch"],):
        changed = {**cfg, "common": {**cfg["common"], "arch": arch}}
        for precision in precisions:
            seconds = seconds_per_iteration(task, "source", changed, source, args.iters, args.warmup, precision)
            rows.append({"arch": arch, "precision": precision, "seconds_per_iteration": seconds,
                         "iterations_per_s": 1 / seconds})  # fmt: skip
    for row in rows:
        fp32 = next(r for r in rows if r["arch"] == row["arch"] and r["precision"] == "fp32")
        row["speedup_vs_fp32"] = fp32["seconds_per_iteration"] / row["seconds_per_iteration"]
    load = os.getloadavg()
    common = cfg["common"]
    print(f"{args.task} source-only on {device()}, batch {common['batch']}, scale {common['scale']}, crop "
          f"{common['crop']}, median of {args.iters - args.warmup} iterations (load average {load[0]:.2f})")
    width = max(len(row["arch"]) for row in rows) + 2
    print(f"{'arch':<{width}}{'precision':<11}{'s/iter':>9}{'iter/s':>9}{'x fp32':>8}")
    for row in rows:
        print(f"{row['arch']:<{width}}{row['precision']:<11}{row['seconds_per_iteration']:>9.3f}"
              f"{row['iterations_per_s']:>9.2f}{row['speedup_vs_fp32']:>8.2f}")
    if not cuda:
        print("mixed precision not run: MMEngine's AmpOptimWrapper needs a GPU")
    out = args.out or (AMP_OUT[args.task] if cuda else None)
    if out:
        report = {"device": device(), "task": args.task, "method": "source", "batch": common["batch"],
                  "scale": common["scale"], "crop": common["crop"], "pretrained": common["pretrained"],
                  "iters": args.iters, "warmup": args.warmup, "rows": rows,
                  "command": " ".join(["python", *sys.argv]), "load_average": load}  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--task", default="seg", choices=("seg", "det"))
    parser.add_argument("--arch", default=None, help="default: <section>.common.arch")
    parser.add_argument("--variant", action="append", default=[], help="METHOD:KEY=YAML, e.g. drsf:use_mdsf=false")
    parser.add_argument("--amp", action="store_true", help="fp32 against mixed precision (see above)")
    parser.add_argument("--out", type=Path, default=None, help="--amp: where to write the JSON")
    args = parser.parse_args()
    task = task_of(args.task)
    task.register()
    params = yaml.safe_load(Path("params.yaml").read_text())
    cfg = params[task.methods.section]
    if args.arch:
        cfg["common"]["arch"] = args.arch
    source = Path("data/domains") / params["data"]["source"] / "train.parquet"
    mm.setup()
    if args.amp:
        amp_bench(args, task, params, source)
        return
    times = {m: seconds_per_iteration(task, m, cfg, source, args.iters, args.warmup) for m in task.methods.all}
    for variant in args.variant:
        method, _, assignment = variant.partition(":")
        key, _, value = assignment.partition("=")
        changed = {**cfg, method: {**(cfg.get(method) or {}), key: yaml.safe_load(value)}}
        times[variant] = seconds_per_iteration(task, method, changed, source, args.iters, args.warmup)
    report = {
        "device": device(),
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
