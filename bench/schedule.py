"""Benchmark: is the default schedule long enough? The source validation mIoU of segmentation runs during training.

    python bench/schedule.py [--method source ...] [--iters 300 900] [--lr ...] [--batch ...] [--images N]
                             [--every 50] [--out PATH]

Each (method, learning rate, batch, iters) trains with params.yaml's `train` settings (its warm-up, then poly decay to
zero at `iters`, as `dvc exp run -S train.common.iters=N -S train.common.lr=LR -S train.common.batch=B` would; `--lr`
and `--batch` default to params.yaml's) on the real source manifest, seed 0, and scores the model on the source
domain's validation split every `every` iterations (the only split it may be tuned on; no target domain is read).
`--images N` trains each batch size on N images (N / batch iterations) instead of `--iters`, to compare batch sizes
at the same compute. A curve that still rises at the default's 300 iterations says the default stops before
convergence. Writes reports/bench/schedule.json (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from provenance import device
from runs import bench_config

from pipeline import mm
from pipeline.seg.evaluate import evaluate
from stages.train import task_of

OUT = Path("reports/bench/schedule.json")


@HOOKS.register_module()
class SourceValidation(Hook):
    """Every `interval` iterations (and after the last) the model's mIoU on `manifest`, into `curve`; the time
    that takes, into `seconds`."""

    curve: list[dict] = []
    seconds = 0.0  # spent validating

    def __init__(self, interval: int, manifest: str, scale: tuple[int, int]):
        self.interval, self.manifest, self.scale = interval, Path(manifest), tuple(scale)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        step = runner.iter + 1
        if step % self.interval and step != runner.max_iters:
            return
        start = time.perf_counter()
        runner.model.eval()
        scores = evaluate(runner.model, self.scale, self.manifest, batch=16)
        runner.model.train()
        SourceValidation.seconds += time.perf_counter() - start
        SourceValidation.curve.append({"step": step, "mIoU": round(scores.miou, 2), "aAcc": round(scores.accuracy, 2)})
        print(f"  {step:>5} iterations: source val mIoU {scores.miou:.2f}", flush=True)


def curve(task, method: str, cfg: dict, source: Path, val: Path, iters: int, lr: float, batch: int,
          every: int) -> tuple[list[dict], float]:  # fmt: skip
    """The validation curve of one run and its wall time without the validations."""
    with tempfile.TemporaryDirectory() as work:
        config = bench_config(task, method, cfg, source, work, iters=iters, lr=lr, batch=batch, checkpoint_every=iters)
        config["custom_hooks"] = [*config["custom_hooks"], dict(type="SourceValidation", interval=every,
                                                                manifest=str(val), scale=cfg["common"]["scale"])]
        SourceValidation.curve, SourceValidation.seconds = [], 0.0
        start = time.perf_counter()
        Runner.from_cfg(Config(config)).train()
    return SourceValidation.curve, time.perf_counter() - start - SourceValidation.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", nargs="+", default=["source"], choices=("source", "source_aug"))
    parser.add_argument("--iters", nargs="+", type=int, default=[300, 900])
    parser.add_argument("--lr", nargs="+", type=float, help="learning rates (default: params.yaml's train.common.lr)")
    parser.add_argument("--batch", nargs="+", type=int, help="images per iteration (default: train.common.batch)")
    parser.add_argument("--images", type=int, help="train each batch size on this many images instead of --iters")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    cfg = params["train"]
    batches = args.batch or [cfg["common"]["batch"]]
    if args.images is not None and args.images < max(batches):
        parser.error(f"--images {args.images} is less than a batch of {max(batches)} images: no iteration to train")
    task = task_of("seg")
    task.register()
    domain = Path("data/domains") / params["data"]["source"]
    mm.setup()
    runs = []
    for method in args.method:
        for lr in args.lr or [cfg["common"]["lr"]]:
            for batch in batches:
                for iters in [args.images // batch] if args.images else args.iters:
                    print(f"{method}, learning rate {lr:g}, batch {batch}, {iters} iterations", flush=True)
                    points, seconds = curve(task, method, cfg, domain / "train.parquet", domain / "val.parquet", iters,
                                            lr, batch, args.every)  # fmt: skip
                    runs.append({"method": method, "lr": lr, "batch": batch, "iters": iters,
                                 "seconds_without_validation": round(seconds), "curve": points})  # fmt: skip
    print(f"{'method':<12}{'lr':>8}{'batch':>6}{'iters':>6}  source val mIoU every {args.every} iterations")
    for run in runs:
        points = " ".join(f"{p['mIoU']:5.1f}" for p in run["curve"])
        print(f"{run['method']:<12}{run['lr']:>8g}{run['batch']:>6}{run['iters']:>6}  {points}")
    report = {"arch": cfg["common"]["arch"], "crop": cfg["common"]["crop"], "seed": 0, "every": args.every,
              "runs": runs, "command": " ".join(["python", *sys.argv]), "machine": device(cuda=False)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
