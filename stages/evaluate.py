"""DVC stage `evaluate`: gathers every model's scores (the `score` stages' reports/scores/<task>/<run>/) into the
tables, metrics and pictures of both tasks.

Writes reports/metrics.json (DVC metrics: `seg.*` mIoU and `det.*` mAP50), and per task under reports/seg and
reports/det: scores.csv and per_class.csv (per seed), domains.csv (mean and std over seeds, a DVC bar plot) and a
gallery per domain (the first seed's predictions); reports/seg/per_class.png is the per-class heatmap. A task with
nothing scored (no runs, e.g. `train.seeds: []`, or no domain with its ground truth) has no key in metrics.json,
header-only tables and an empty gallery.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import scores, tables
from pipeline.det import report as det_report
from pipeline.errors import InputError, listed
from pipeline.manifest import read_manifest
from pipeline.seg import report as seg_report
from pipeline.training.run import run_name
from stages import params
from stages.score import SCORES, TASKS, settings

METRICS = Path("reports/metrics.json")
KEYS = ["method", "seed", "domain"]
DRAW = {"seg": seg_report.draw, "det": det_report.draw}


def gather(task: str, runs: list[tuple[str, int]], domains: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The score and per-class tables of `runs` (method, seed), checked to be scored on the evaluated `domains` only,
    and, per domain and method, the first seed's kept predictions."""
    _, _, columns, value = TASKS[task]
    rows, per_class, kept = [], [], {}
    for method, seed in runs:
        folder = SCORES / task / run_name(method, seed)
        if not (folder / "scores.parquet").is_file():
            raise InputError(folder, "missing", "run `dvc repro` (it trains and scores the models first)")
        table, classes, predictions = scores.read(folder)
        if other := sorted(set(table["domain"]) - domains):
            raise InputError(folder, f"scored on {other[0]}, which is not evaluated now (data.targets changed)",
                             "run `dvc repro` (it scores the models again)")  # fmt: skip
        rows += table.assign(method=method, seed=seed).to_dict("records")
        per_class += classes.assign(method=method, seed=seed).to_dict("records")
        for domain, found in predictions.items() if seed == runs[0][1] else ():
            kept.setdefault(domain, {})[method] = found
    return (pd.DataFrame(rows, columns=[*KEYS, *columns]), pd.DataFrame(per_class, columns=[*KEYS, "class", value]),
            kept)  # fmt: skip


def run() -> str:
    data, evaluation, manifests = settings()
    runs = {}
    for task, (section, *_) in TASKS.items():
        cfg = params(section, required=("methods", "seeds"))
        methods, seeds = listed(cfg["methods"], f"{section}.methods"), listed(cfg["seeds"], f"{section}.seeds", int)
        runs[task] = [(m, s) for m in ["source", *methods] for s in seeds]
    gathered = {task: gather(task, task_runs, set(manifests)) for task, task_runs in runs.items()}  # read, then write
    metrics, lines = {}, []
    for task, (table, per_class, kept) in gathered.items():
        columns = TASKS[task][2]
        targets = [d for d in data["targets"] if d in set(table["domain"])]
        table = tables.with_target_mean(table, targets, columns)
        metrics |= {k: v for k, v in tables.metrics(table, task, columns).items() if v}
        out = Path("reports") / task
        tables.write_csv(table, out / "scores.csv")
        tables.write_csv(per_class, out / "per_class.csv")
        tables.write_csv(tables.summary(table, columns), out / "domains.csv")
        rows = {d: read_manifest(manifests[d]).head(evaluation["gallery"]) for d in kept}
        DRAW[task](out, rows, kept, per_class, targets)
        mean = table[table["domain"] == tables.TARGET_MEAN].groupby("method", sort=False)[columns[0]].mean()
        lines.append(f"target-mean {columns[0]} " + ", ".join(f"{m} {v:.1f}" for m, v in mean.items())
                     if len(mean) else f"no {task} scores")  # fmt: skip
    tables.write_json(metrics, METRICS)
    if data["source"] not in manifests:
        lines.append(f"source {data['source']} not scored: it has no {evaluation['split']} split")
    return f"wrote {METRICS}: " + "; ".join(lines)
