"""What `evaluate` writes: DVC metrics with flat, stable keys, per-class and per-domain tables, a per-class heatmap
and a gallery of predictions per domain.

`reports/metrics.json` nests as seg -> method -> domain -> {mIoU, mIoU_std, aAcc}, which DVC shows as
`seg.<method>.<domain>.mIoU`; `target_mean` is the mean over the target domains, computed per seed and then
averaged (its std is over seeds). Standard deviations are over seeds (0 with one seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402
from pipeline.labels import CLASSES, colorize  # noqa: E402
from pipeline.sheets import contact_sheet, read_rgb, write_png  # noqa: E402

TARGET_MEAN = "target_mean"


def with_target_mean(scores: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """Rows of (method, seed, domain, mIoU, aAcc), plus a `target_mean` row per (method, seed)."""
    means = scores[scores["domain"].isin(targets)].groupby(["method", "seed"], sort=False)[["mIoU", "aAcc"]].mean()
    return pd.concat([scores, means.reset_index().assign(domain=TARGET_MEAN)], ignore_index=True)


def metrics(domains: pd.DataFrame) -> dict:
    """seg -> method -> domain -> {mIoU, mIoU_std, aAcc}, mean and std over seeds, rounded to 0.01."""
    out: dict = {"seg": {}}
    for (method, domain), group in domains.groupby(["method", "domain"], sort=False):
        std = float(group["mIoU"].std(ddof=0))
        out["seg"].setdefault(method, {})[domain] = {"mIoU": round(float(group["mIoU"].mean()), 2),
                                                     "mIoU_std": round(std, 2),
                                                     "aAcc": round(float(group["aAcc"].mean()), 2)}  # fmt: skip
    return out


def write_json(data: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.2f")


def heatmap(per_class: pd.DataFrame, targets: list[str], path: Path) -> None:
    """Per-class IoU on the targets (mean over target domains and seeds): methods x classes."""
    table = per_class[per_class["domain"].isin(targets)].pivot_table(index="method", columns="class", values="IoU",
                                                                     aggfunc="mean", sort=False)  # fmt: skip
    table = table.reindex(columns=[c for c in CLASSES if c in table.columns])
    fig, ax = plt.subplots(figsize=(1 + 0.55 * table.shape[1], 1 + 0.45 * table.shape[0]))
    ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=60, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black",
                    fontsize=7)  # fmt: skip
    ax.set_title("IoU (%) per class, mean over the target domains")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def gallery(rows: pd.DataFrame, predictions: dict[str, list[np.ndarray]], path: Path, tile_height: int = 96) -> None:
    """The manifest `rows`' images, their ground truth and each model's predictions, one row each."""
    images = [read_rgb(p) for p in rows["image"]]
    size = (images[0].shape[1], images[0].shape[0])
    truths = [colorize(cv2.imread(p, cv2.IMREAD_UNCHANGED)) for p in rows["label"]]
    sheet = [("image", images), ("ground truth", truths)]
    sheet += [(name, [colorize(cv2.resize(p, size, interpolation=cv2.INTER_NEAREST)) for p in preds])
              for name, preds in predictions.items()]  # fmt: skip
    write_png(contact_sheet(sheet, tile_height=tile_height), path)
