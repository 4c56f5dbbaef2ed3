"""Score tables of both tasks and the DVC metrics made from them.

A score table has one row per (method, seed, domain) with score columns (seg: mIoU, aAcc; det: mAP50).
`with_target_mean` adds a `target_mean` row per (method, seed): the mean over the target domains, computed per seed.
`summary` and `metrics` then average over seeds. One convention everywhere (metrics.json and every CSV): the mean
over seeds and the population standard deviation over seeds (ddof=0; 0 with one seed).
`reports/metrics.json` nests task -> method -> domain -> {<score>, <score>_std, ...}, which DVC shows as
`seg.<method>.<domain>.mIoU` and `det.<method>.<domain>.mAP50`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.atomic import atomic_path

TARGET_MEAN = "target_mean"


def score_runs(scorer, runs: list[tuple[str, int, Path]], manifests: dict[str, Path], batch: int, gallery: int,
               value: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, list]]]:  # fmt: skip
    """Score every (method, seed, model folder) of `runs` on every domain's manifest with `scorer(folder)` (a task's
    evaluate function): the score table, the per-class table (the column `value` per class) and, per domain and method, the
    first seed's first `gallery` predictions (no entry for a domain without any: `gallery` 0 draws none)."""
    rows, per_class, kept = [], [], {}
    first_seed = runs[0][1] if runs else None
    for method, seed, folder in runs:
        evaluate = scorer(folder)
        for domain, manifest in manifests.items():
            result = evaluate(manifest, batch, gallery if seed == first_seed else 0, f"{method}-s{seed} on {domain}")
            rows.append(dict(method=method, seed=seed, domain=domain, **result.scores))
            per_class += [dict(method=method, seed=seed, domain=domain, **{"class": c, value: v})
                          for c, v in result.per_class.items()]  # fmt: skip
            if result.kept:
                kept.setdefault(domain, {})[method] = result.kept
    return pd.DataFrame(rows), pd.DataFrame(per_class), kept


def with_target_mean(scores: pd.DataFrame, targets: list[str], columns: list[str]) -> pd.DataFrame:
    """The score rows plus a `target_mean` row per (method, seed): the mean of `columns` over the `targets`."""
    means = scores[scores["domain"].isin(targets)].groupby(["method", "seed"], sort=False)[columns].mean()
    return pd.concat([scores, means.reset_index().assign(domain=TARGET_MEAN)], ignore_index=True)


def summary(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per (method, domain): the mean over seeds of each of `columns`, and `<first column>_std` over seeds."""
    groups = table.groupby(["method", "domain"], sort=False)
    out = groups[columns].mean()
    out[f"{columns[0]}_std"] = groups[columns[0]].std(ddof=0)
    return out.reset_index()


def metrics(table: pd.DataFrame, task: str, columns: list[str]) -> dict:
    """task -> method -> domain -> {column means, <first column>_std}, rounded to 0.01."""
    out: dict = {task: {}}
    for row in summary(table, columns).to_dict("records"):
        values = {k: round(float(v), 2) for k, v in row.items() if k not in ("method", "domain")}
        out[task].setdefault(row["method"], {})[row["domain"]] = values
    return out


def write_json(data: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.2f")
