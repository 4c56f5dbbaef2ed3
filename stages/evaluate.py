"""DVC stage `evaluate`: every trained model of both tasks on the source validation split (`evaluate.split`; a source
without one, such as GTA5 read as one train split, is not scored) and every target domain.

Writes reports/metrics.json (DVC metrics: `seg.*` mIoU and `det.*` mAP50), and per task under reports/seg and
reports/det: scores.csv and per_class.csv (per seed), domains.csv (mean and std over seeds, a DVC bar plot) and a
gallery per domain; reports/seg/per_class.png is the per-class heatmap. A domain without the task's ground truth
(no pixel labels, or no boxes) is left out of that task's scores; a task with nothing to score (no runs, e.g.
`train.seeds: []`, or no such domain) has no key in metrics.json, header-only tables and an empty gallery.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import tables
from pipeline.det import report as det_report
from pipeline.det.evaluate import scorer as det_scorer
from pipeline.errors import InputError, listed, whole
from pipeline.manifest import read_manifest
from pipeline.seg import report as seg_report
from pipeline.seg.evaluate import scorer as seg_scorer
from pipeline.training.run import run_name
from stages import params

DOMAINS = Path("data/domains")
METRICS = Path("reports/metrics.json")
KEYS = ["method", "seed", "domain"]
# task: (params section, scorer, drawing, ground-truth column, score columns, per-class column)
TASKS = {"seg": ("train", seg_scorer, seg_report.draw, "label", ["mIoU", "aAcc"], "IoU"),
         "det": ("det", det_scorer, det_report.draw, "boxes", ["mAP50"], "AP50")}  # fmt: skip


def split_manifest(folder: Path, split: str) -> Path:
    """A target's `<split>.parquet`, or its only manifest where it has no such split: Diverse-Weather's dusk_rainy and
    night_rainy have only a train list, which DRSF's protocol tests on."""
    only = sorted(folder.glob("*.parquet"))
    return only[0] if len(only) == 1 and not (folder / f"{split}.parquet").is_file() else folder / f"{split}.parquet"


def source_manifest(folder: Path, split: str) -> Path | None:
    """The source's `<split>.parquet`, or None where it has none (GTA5 read as one train split): its other manifests
    hold the images the models trained on, whose scores would pass for the source's validation scores."""
    path = folder / f"{split}.parquet"
    return path if path.is_file() or not any(folder.glob("*.parquet")) else None


def run() -> str:
    data = params("data", required=("source", "targets"))
    evaluation = params("evaluate", required=("split", "batch", "gallery"))
    if not isinstance(evaluation["split"], str):
        raise InputError("params.yaml evaluate.split", f"{evaluation['split']!r} is not a split",
                         "set evaluate.split to a split name, e.g. val")  # fmt: skip
    whole(evaluation["batch"], "evaluate.batch")
    whole(evaluation["gallery"], "evaluate.gallery", minimum=0)
    source = source_manifest(DOMAINS / data["source"], evaluation["split"])
    manifests = {d: split_manifest(DOMAINS / d, evaluation["split"]) for d in data["targets"]}
    manifests = {data["source"]: source, **manifests} if source else manifests
    runs = {}
    for task, (section, *_) in TASKS.items():
        cfg = params(section, required=("methods", "seeds"))
        methods, seeds = listed(cfg["methods"], f"{section}.methods"), listed(cfg["seeds"], f"{section}.seeds", int)
        runs[task] = [(m, s, Path("models") / task / run_name(m, s)) for m in ["source", *methods] for s in seeds]
    for path in [*manifests.values(), *(folder / "model.pth" for task in runs.values() for _, _, folder in task)]:
        if not path.is_file():
            raise InputError(path, "missing", "run `dvc repro` (it builds the domains and trains the models first)")
    frames = {domain: read_manifest(path) for domain, path in manifests.items()}
    metrics, lines = {}, []
    for task, (_, scorer, draw, truth, columns, value) in TASKS.items():
        scored = {d: manifests[d] for d, frame in frames.items() if frame[truth].notna().any()}
        table, per_class = pd.DataFrame(columns=[*KEYS, *columns]), pd.DataFrame(columns=[*KEYS, "class", value])
        kept: dict = {}
        if runs[task] and scored:
            table, per_class, kept = tables.score_runs(scorer, runs[task], scored, evaluation["batch"],
                                                       evaluation["gallery"], value)  # fmt: skip
        targets = [d for d in data["targets"] if d in scored]
        table = tables.with_target_mean(table, targets, columns)
        metrics |= {k: v for k, v in tables.metrics(table, task, columns).items() if v}
        out = Path("reports") / task
        tables.write_csv(table, out / "scores.csv")
        tables.write_csv(per_class, out / "per_class.csv")
        tables.write_csv(tables.summary(table, columns), out / "domains.csv")
        draw(out, {d: frames[d].head(evaluation["gallery"]) for d in kept}, kept, per_class, targets)
        mean = table[table["domain"] == tables.TARGET_MEAN].groupby("method", sort=False)[columns[0]].mean()
        lines.append(f"target-mean {columns[0]} " + ", ".join(f"{m} {v:.1f}" for m, v in mean.items())
                     if len(mean) else f"no {task} scores")  # fmt: skip
    tables.write_json(metrics, METRICS)
    if not source:
        lines.append(f"source {data['source']} not scored: it has no {evaluation['split']} split")
    return f"wrote {METRICS}: " + "; ".join(lines)
