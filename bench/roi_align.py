"""Benchmark: mmcv's CPU RoIAlign against dgsynth's threaded one (pipeline/det/roi_align.cpp) on the default detector's
own RoIAlign calls, in one run.

    python bench/roi_align.py [--repeats 5] [--domain world_a_fog]

Records the RoIAlign calls (each FPN level's feature maps and RoIs) of the trained source-only detector
(models/det/source-s0, so run `dvc repro det-source@0` first) in one training iteration with params.yaml's `det`
settings on a batch of the source manifest, and in its evaluation of `--domain`'s validation images. Then runs both
kernels on exactly those inputs: forward for both workloads, backward (with one random output gradient) for the
training one; the median over `--repeats` of each call, summed over the calls, and whether the two kernels give the
same bits. Prints a table and writes reports/bench/roi_align.json.
"""

from __future__ import annotations

import argparse
import importlib
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
from pipeline.det.evaluate import scorer
from stages.train import task_of

OUT = Path("reports/bench/roi_align.json")
MODEL = Path("models/det/source-s0")


def recorded(run) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
    """The (features, RoIs, options) of every average-pooling RoIAlign call that `run()` makes."""
    ops = importlib.import_module("mmcv.ops.roi_align").ext_module  # pipeline.mm's router (mm.setup())
    calls, forward = [], ops.roi_align_forward

    def record(input, rois, output, argmax_y, argmax_x, **options):
        if options["pool_mode"] == 1:
            calls.append((input.detach().clone(), rois.detach().clone(), options))
        return forward(input, rois, output, argmax_y, argmax_x, **options)

    ops.roi_align_forward = record
    try:
        run()
    finally:
        del ops.roi_align_forward  # the router's own method again
    return calls


def training_calls(params: dict) -> list:
    """The calls of one training iteration of the trained source detector on a batch of the source manifest."""
    task = task_of("det")
    task.register()
    source = Path("data/domains") / params["data"]["source"] / "train.parquet"
    with tempfile.TemporaryDirectory() as work:
        config = bench_config(task, "source", params["det"], source, work, iters=2, warmup=1, checkpoint_every=2,
                              workers=0)  # fmt: skip
        runner = Runner.from_cfg(Config(config))
        runner.train_loop  # noqa: B018  (the property builds the loop and its data loader)
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        runner.model.load_state_dict(torch.load(MODEL / "model.pth", map_location="cpu", weights_only=True))
        batch = next(iter(runner.train_dataloader))
        return recorded(lambda: runner.model.train_step(batch, optim_wrapper=runner.optim_wrapper))


def evaluation_calls(params: dict, domain: str) -> list:
    """The calls of the evaluation of the trained source detector on `domain`'s evaluation split."""
    manifest = Path("data/domains") / domain / f"{params['evaluate']['split']}.parquet"
    evaluate = scorer(MODEL)
    with torch.no_grad():
        return recorded(lambda: evaluate(manifest, params["evaluate"]["batch"], 0, f"record {domain}"))


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(calls: list, repeats: int, backward: bool) -> dict:
    """Both kernels on each call: seconds (median over `repeats`, summed over calls) and whether the bits agree."""
    ops = importlib.import_module("mmcv.ops.roi_align").ext_module
    mmcv, ours = ops.ops, ops.kernel
    seconds = {"mmcv forward": 0.0, "threaded forward": 0.0, "mmcv backward": 0.0, "threaded backward": 0.0}
    same = True
    for features, rois, options in calls:
        shape = (len(rois), features.shape[1], options["aligned_height"], options["aligned_width"])
        out = {name: features.new_zeros(shape) for name in ("mmcv", "threaded")}
        empty = features.new_zeros(0)
        scale, sampling, aligned = options["spatial_scale"], options["sampling_ratio"], options["aligned"]
        runs = {"mmcv forward": lambda: mmcv.roi_align_forward(features, rois, out["mmcv"], empty, empty, **options),
                "threaded forward": lambda: ours.forward(features, rois, out["threaded"], scale, sampling, aligned)}
        if backward:
            grad = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            grads = {name: torch.zeros_like(features) for name in ("mmcv", "threaded")}

            def mmcv_backward():
                grads["mmcv"].zero_()
                mmcv.roi_align_backward(grad, rois, empty, empty, grads["mmcv"], **options)

            def threaded_backward():
                grads["threaded"].zero_()
                ours.backward(grad, rois, grads["threaded"], scale, sampling, aligned)

            runs |= {"mmcv backward": mmcv_backward, "threaded backward": threaded_backward}
        for name, run in runs.items():
            seconds[name] += median_seconds(run, repeats)
        same &= torch.equal(out["mmcv"], out["threaded"]) and (not backward or torch.equal(*grads.values()))
    return {"calls": len(calls), "rois": sum(len(rois) for _, rois, _ in calls),
            "seconds": seconds if backward else {k: v for k, v in seconds.items() if "forward" in k}, "same_bits": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--domain", default="world_a_fog")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    mm.setup()
    if not hasattr(importlib.import_module("mmcv.ops.roi_align").ext_module, "kernel"):
        raise SystemExit("pipeline/det/roi_align.cpp did not build (see the warning above): nothing to compare")
    torch.set_flush_denormal(True)  # as training does (pipeline.training.run)
    rows = {"training iteration": compare(training_calls(params), args.repeats, backward=True),
            f"evaluation of {args.domain}": compare(evaluation_calls(params, args.domain), args.repeats, False)}
    header = f"{'workload':<28}{'calls':>6}{'RoIs':>7}{'pass':>10}{'mmcv s':>9}{'threaded s':>12}{'speed-up':>10}"
    print(f"\n{header}  same bits")
    for workload, row in rows.items():
        for direction in ("forward", "backward"):
            if f"mmcv {direction}" in row["seconds"]:
                theirs, mine = row["seconds"][f"mmcv {direction}"], row["seconds"][f"threaded {direction}"]
                print(f"{workload:<28}{row['calls']:>6}{row['rois']:>7}{direction:>10}{theirs:>9.3f}{mine:>12.3f}"
                      f"{theirs / mine:>9.1f}x  {row['same_bits']}")  # fmt: skip
    report = {"model": str(MODEL), "arch": params["det"]["common"]["arch"], "batch": params["det"]["common"]["batch"],
              "repeats": args.repeats, "rows": rows, "command": "python bench/roi_align.py", "commit": commit(),
              "machine": device(cuda=False), "load_average": os.getloadavg()[0]}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
