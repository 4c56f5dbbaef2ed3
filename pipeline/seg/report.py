"""What `evaluate` draws for segmentation: a per-class heatmap and a gallery of predictions per domain (the tables and
metrics are `pipeline.tables`)."""

from __future__ import annotations

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


def heatmap(per_class: pd.DataFrame, targets: list[str], path: Path) -> None:
    """Per-class IoU on the targets (mean over target domains and seeds): methods x classes."""
    table = per_class[per_class["domain"].isin(targets)].pivot_table(index="method", columns="class", values="IoU",
                                                                     aggfunc="mean", sort=False)  # fmt: skip
    table = table.reindex(columns=[c for c in CLASSES if c in table.columns])
    if table.empty:  # nothing scored (e.g. `train.seeds: []`): DVC still expects the picture
        table = pd.DataFrame(np.full((1, 1), np.nan), index=["no scores"], columns=[""])
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


def draw(out: Path, rows: dict[str, pd.DataFrame], kept: dict[str, dict[str, list[np.ndarray]]],
         per_class: pd.DataFrame, targets: list[str]) -> None:  # fmt: skip
    """`evaluate`'s pictures: a gallery per domain (its `rows` and each method's `kept` predictions) in
    `out/gallery/` (made even when empty: DVC expects it) and the heatmap of `per_class` IoU on the targets."""
    (out / "gallery").mkdir(parents=True, exist_ok=True)
    for domain, by_method in kept.items():
        gallery(rows[domain], by_method, out / "gallery" / f"{domain}.png")
    heatmap(per_class, targets, out / "per_class.png")
