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
