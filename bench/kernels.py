"""Benchmark: mmcv's CPU RoIAlign and NMS against dgsynth's (pipeline/det/kernels) on the default detector's own
calls, in one run.

    python bench/kernels.py [--repeats 5] [--domain world_a_fog]

Records the average-pooling RoIAlign calls (each FPN level's feature maps and RoIs) and the NMS calls (the RPN's
proposals, the detection head's boxes) of the trained source-only detector (models/det/source-s0, so run
`dvc repro det-source@0` first) in one training iteration with params.yaml's `det` settings on a batch of the source
manifest, and in its evaluation of `--domain`'s validation images. Then runs both kernels on exactly those inputs, on
torch's threads: RoIAlign forward for both workloads and backward (with one random output gradient) for the training
one, NMS for both; the median over `--repeats` of each call, summed over the calls, and whether the two kernels give
the same bits. Prints a table and writes reports/bench/kernels.json.
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
from pipeline.det.kernels import kernel
from stages.train import task_of

OUT = Path("reports/bench/kernels.json")
MODEL = Path("models/det/source-s0")


def mmcv_ops():
    """mmcv's own compiled ops (behind pipeline.mm's router)."""
    return importlib.import_module("mmcv.ops.roi_align").ext_module.ops


def recorded(run) -> dict[str, list]:
    """The average-pooling RoIAlign calls (features, RoIs, options) and the NMS calls (boxes, scores, options) that
    `run()` makes."""
    router = importlib.import_module("mmcv.ops.roi_align").ext_module  # pipeline.mm's router (mm.setup())
    calls = {"roi_align": [], "nms": []}
    forward, nms = router.roi_align_forward, router.nms

    def record_roi_align(input, rois, output, argmax_y, argmax_x, **options):
        if options["pool_mode"] == 1:
            calls["roi_align"].append((input.detach().clone(), rois.detach().clone(), options))
        return forward(input, rois, output, argmax_y, argmax_x, **options)

    def record_nms(boxes, scores, iou_threshold, offset):
        calls["nms"].append((boxes.clone(), scores.clone(), {"iou_threshold": iou_threshold, "offset": offset}))
        return nms(boxes, scores, iou_threshold=iou_threshold, offset=offset)

    router.roi_align_forward, router.nms = record_roi_align, record_nms
    try:
        run()
    finally:
        del router.roi_align_forward, router.nms  # the router's own methods again
    return calls


def training_calls(params: dict) -> dict:
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


def evaluation_calls(params: dict, domain: str) -> dict:
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


def timed(runs: dict, repeats: int, seconds: dict) -> dict:
    """Each run's result, its median time added to `seconds` under its name."""
    results = {}
    for name, run in runs.items():
        seconds[name] = seconds.get(name, 0.0) + median_seconds(run, repeats)
        results[name] = run()
    return results


def compare_roi_align(calls: list, repeats: int, backward: bool) -> dict:
    """Both RoIAlign kernels on each call: seconds (median over `repeats`, summed over calls) and whether the bits
    agree."""
    seconds, same = {}, True
    for features, rois, options in calls:
        shape = (len(rois), features.shape[1], options["aligned_height"], options["aligned_width"])
        empty = features.new_zeros(0)
        scale, sampling, aligned = options["spatial_scale"], options["sampling_ratio"], options["aligned"]

        def mmcv_forward(out=features.new_zeros(shape)):
            mmcv_ops().roi_align_forward(features, rois, out, empty, empty, **options)
            return out

        def dgsynth_forward(out=features.new_zeros(shape)):
            kernel().roi_align_forward(features, rois, out, scale, sampling, aligned)
            return out

        runs = {"mmcv forward": mmcv_forward, "dgsynth forward": dgsynth_forward}
        if backward:
            grad = torch.randn(shape, generator=torch.Generator().manual_seed(0))

            def mmcv_backward(into=torch.zeros_like(features)):
                mmcv_ops().roi_align_backward(grad, rois, empty, empty, into.zero_(), **options)
                return into

            def dgsynth_backward(into=torch.zeros_like(features)):
                kernel().roi_align_backward(grad, rois, into.zero_(), scale, sampling, aligned)
                return into

            runs |= {"mmcv backward": mmcv_backward, "dgsynth backward": dgsynth_backward}
        out = timed(runs, repeats, seconds)
        same &= all(torch.equal(out[f"mmcv {p}"], out[f"dgsynth {p}"]) for p in ("forward", "backward") if backward
                    or p == "forward")  # fmt: skip
    return {"calls": len(calls), "items": sum(len(rois) for _, rois, _ in calls), "seconds": seconds, "same_bits": same}


def compare_nms(calls: list, repeats: int) -> dict:
    """Both NMS kernels on each call: seconds (median over `repeats`, summed over calls), whether they keep the same
    boxes in the same order."""
    seconds, same = {}, True
    for boxes, scores, options in calls:
        runs = {"mmcv nms": lambda: mmcv_ops().nms(boxes, scores, **options),
                "dgsynth nms": lambda: kernel().nms(boxes, scores, options["iou_threshold"], options["offset"])}
        out = timed(runs, repeats, seconds)
        same &= torch.equal(out["mmcv nms"], out["dgsynth nms"])
    items = sum(len(boxes) for boxes, _, _ in calls)
    return {"calls": len(calls), "items": items, "seconds": seconds, "same_bits": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--domain", default="world_a_fog")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    mm.setup()
    if kernel() is None:
        raise SystemExit("pipeline/det/kernels did not build (see the warning above): nothing to compare")
    torch.set_flush_denormal(True)  # as training does (pipeline.training.run)
    workloads = {"training iteration": training_calls(params),
                 f"evaluation of {args.domain}": evaluation_calls(params, args.domain)}  # fmt: skip
    rows = {workload: {"roi_align": compare_roi_align(calls["roi_align"], args.repeats, workload.startswith("train")),
                       "nms": compare_nms(calls["nms"], args.repeats)}
            for workload, calls in workloads.items()}  # fmt: skip
    print(f"\n{'workload':<28}{'op':<10}{'calls':>6}{'items':>8}{'pass':>9}{'mmcv s':>9}{'dgsynth s':>11}"
          f"{'speed-up':>10}  same bits")  # fmt: skip
    for workload, ops in rows.items():
        for op, row in ops.items():
            for name in [key.split(" ", 1)[1] for key in row["seconds"] if key.startswith("mmcv ")]:
                theirs, mine = row["seconds"][f"mmcv {name}"], row["seconds"][f"dgsynth {name}"]
                print(f"{workload:<28}{op:<10}{row['calls']:>6}{row['items']:>8}{name:>9}{theirs:>9.3f}{mine:>11.3f}"
                      f"{theirs / mine:>9.1f}x  {row['same_bits']}")  # fmt: skip
    report = {"model": str(MODEL), "arch": params["det"]["common"]["arch"], "batch": params["det"]["common"]["batch"],
              "repeats": args.repeats, "threads": torch.get_num_threads(), "rows": rows,
              "command": "python bench/kernels.py", "commit": commit(), "machine": device(cuda=False),
              "load_average": os.getloadavg()[0]}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
