"""Benchmark: images per second of the filter's pass (statistics, prediction, consistency) on the CPU, by batch size.

    python bench/filter.py [--images 128] [--batches 1 16] [--arch segformer-b0]

The reference network is the default one (the source-only model: `train.common.arch` at `train.common.scale`),
with random weights (the speed does not depend on them), over the first `images` rows of the source training
manifest (run `dvc repro data` first). Also times fitting the source Gaussian and scoring, on descriptions of that
size. Writes reports/bench/filter.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from provenance import device

from pipeline.filter.features import load_reference, run_pass
from pipeline.filter.stats import SourceGaussian
from pipeline.manifest import read_manifest
from pipeline.seg.models import model_config
from pipeline.training.run import export

OUT = Path("reports/bench/filter.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--arch", default=None, help="default: train.common.arch")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    common, levels = params["train"]["common"], params["filter"]["levels"]
    arch = args.arch or common["arch"]
    source = (Path("data/domains") / params["data"]["source"] / "train.parquet").resolve()  # absolute image paths
    register_all_modules(init_default_scope=False)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp, DefaultScope.overwrite_default_scope("mmseg"):
        config = model_config(arch)
        model = MODELS.build(config)
        model.init_weights()
        export(model, {"model": config}, tuple(common["scale"]), [], Path(tmp) / "model")
        read_manifest(source).head(args.images).to_parquet(Path(tmp) / "rows.parquet")
        rows = Path(tmp) / "rows.parquet"
        reference = load_reference(Path(tmp) / "model", None, levels)
        run_pass(reference, rows, max(args.batches), "warm-up")
        for batch in args.batches:
            start = time.perf_counter()
            described = run_pass(reference, rows, batch, f"batch {batch}")
            rates[batch] = args.images / (time.perf_counter() - start)
    start = time.perf_counter()
    stats = np.repeat(described.stats, 600 // args.images + 1, axis=0)[:600]
    stats = stats + np.random.default_rng(0).normal(scale=1e-3, size=stats.shape)
    gaussian = SourceGaussian.fit(stats, described.channels)
    gaussian.mahalanobis(stats), gaussian.frechet(stats)
    fit_seconds = time.perf_counter() - start
    report = {
        "device": device(cuda=False),
        "arch": arch, "scale": common["scale"], "levels": levels, "dimensions": int(described.stats.shape[1]),
        "images": args.images, "images_per_second": rates, "fit_and_score_600_seconds": round(fit_seconds, 3),
    }  # fmt: skip
    print(f"{arch} at {common['scale']}, {described.stats.shape[1]} statistics per image")
    print(f"{'batch':>6}{'img/s':>9}")
    for batch, rate in rates.items():
        print(f"{batch:>6}{rate:>9.1f}")
    print(f"fit the source Gaussian on 600 images and score 600: {fit_seconds:.2f} s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
