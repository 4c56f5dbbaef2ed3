"""DVC stage `evaluate`: every trained model on the source validation split and every target domain.

Writes reports/metrics.json (DVC metrics), reports/seg/{scores,per_class}.csv (per seed), reports/seg/domains.csv
(mean over seeds, a DVC bar plot), reports/seg/per_class.png and reports/seg/gallery/<domain>.png.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import InputError
from pipeline.labels import CLASSES
from pipeline.manifest import read_manifest
from pipeline.seg import report
from pipeline.seg.evaluate import evaluate, load_model
from pipeline.seg.train import run_name
from stages import params

MODELS = Path("models/seg")
DOMAINS = Path("data/domains")
METRICS = Path("reports/metrics.json")
OUT = Path("reports/seg")


def run() -> str:
    data = params("data", required=("source", "targets"))
    cfg = params("train", required=("methods", "seeds"))
    evaluation = params("evaluate", required=("split", "batch", "gallery"))
    domains = [data["source"], *data["targets"]]
    manifests = {d: DOMAINS / d / f"{evaluation['split']}.parquet" for d in domains}
    runs = [(m, s, MODELS / run_name(m, s)) for m in ["source", *cfg["methods"]] for s in cfg["seeds"]]
    for path in [*manifests.values(), *(folder / "model.pth" for _, _, folder in runs)]:
        if not path.is_file():
            raise InputError(path, "missing", "run `dvc repro` (it builds the domains and trains the models first)")
    scores, per_class, predictions = [], [], {d: {} for d in domains}
    for method, seed, folder in runs:
        model, scale = load_model(folder)
        for domain, manifest in manifests.items():
            result = evaluate(model, scale, manifest, evaluation["batch"], keep=evaluation["gallery"] if seed ==
                              cfg["seeds"][0] else 0, desc=f"{method}-s{seed} on {domain}")  # fmt: skip
            scores.append(dict(method=method, seed=seed, domain=domain, mIoU=result.miou, aAcc=result.accuracy))
            per_class += [dict(method=method, seed=seed, domain=domain, **{"class": c}, IoU=v)
                          for c, v in zip(CLASSES, result.iou)]  # fmt: skip
            if result.predictions:
                predictions[domain][method] = result.predictions
    table = report.with_target_mean(pd.DataFrame(scores), data["targets"])
    per_class = pd.DataFrame(per_class)
    report.write_json(report.metrics(table), METRICS)
    report.write_csv(table, OUT / "scores.csv")
    report.write_csv(per_class, OUT / "per_class.csv")
    report.write_csv(table.groupby(["method", "domain"], sort=False)["mIoU"].agg(["mean", "std"]).reset_index()
                     .rename(columns={"mean": "mIoU", "std": "mIoU_std"}), OUT / "domains.csv")  # fmt: skip
    report.heatmap(per_class, data["targets"], OUT / "per_class.png")
    for domain, by_method in predictions.items():
        report.gallery(read_manifest(manifests[domain]).head(evaluation["gallery"]), by_method,
                       OUT / "gallery" / f"{domain}.png")  # fmt: skip
    mean = table[table["domain"] == report.TARGET_MEAN].groupby("method", sort=False)["mIoU"].mean()
    return f"wrote {METRICS}: target-mean mIoU " + ", ".join(f"{m} {v:.1f}" for m, v in mean.items())
