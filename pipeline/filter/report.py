"""What `filter` shows people: distance histograms per condition, kept/rejected counts, and a contact sheet.

- `histograms`: one panel per condition, the synthetic images' distances (kept and rejected stacked) over the held-out
  source validation images' distances, so that 'far' reads against what real source images score;
- `conditions`: images, kept and rejected per condition (a DVC bar plot);
- `sheet`: rows of the most typical synthetic images, the kept images farthest from the source, and the rejected ones
  per reason, farthest first, one image per condition in a row;
- `layout` and `layout_figure`: how well the synthetic images still fit the labels they reuse, per condition: the
  source model's mean per-image mIoU on them relative to its mean on real source validation images (1: as well as a
  real image; every synthetic image is counted, kept or not).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402
from pipeline.sheets import contact_sheet, read_rgb, write_png  # noqa: E402

SOURCE = "source (val)"
REASONS = ("far", "near", "inconsistent")
LAYOUT_AIM = 0.7  # the share of the real images' mIoU that synthetic images should keep (a line on the figure)


def histograms(rows: pd.DataFrame, score: str, path: Path) -> None:
    synthetic = rows[rows["condition"] != SOURCE]
    conditions = sorted(synthetic["condition"].unique())
    reference = rows.loc[rows["condition"] == SOURCE, score].to_numpy()
    bins = np.histogram_bin_edges(rows[score].to_numpy(), bins=30)
    columns = 4
    lines = -(-len(conditions) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.2 * lines), sharex=True, squeeze=False)
    for ax, condition in zip(axes.flat, conditions):
        group = synthetic[synthetic["condition"] == condition]
        if len(reference):
            ax.hist(reference, bins=bins, color="0.75", density=True, label=SOURCE)
        ax2 = ax.twinx()
        ax2.hist([group.loc[group["kept"], score], group.loc[~group["kept"], score]], bins=bins, stacked=True,
                 color=["tab:blue", "tab:red"], label=["kept", "rejected"])  # fmt: skip
        ax2.set_yticks([])
        ax.set_yticks([])
        ax.set_title(f"{condition} ({int(group['kept'].sum())}/{len(group)} kept)", fontsize=9)
    for ax in axes.flat[len(conditions) :]:
        ax.axis("off")
    fig.suptitle(f"{score} distance to the source statistics: source val (grey), kept (blue), rejected (red)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def conditions(rows: pd.DataFrame) -> pd.DataFrame:
    synthetic = rows[rows["condition"] != SOURCE]
    counts = synthetic.groupby("condition")["kept"].agg(images="size", kept="sum").reset_index()
    return counts.assign(rejected=counts["images"] - counts["kept"])


def sheet(rows: pd.DataFrame, images: dict[str, str], score: str, count: int, path: Path, tile_height: int) -> None:
    """`images` maps a synthetic id to its image file. Each row takes at most one image per condition (ranked by the
    quantile within its condition, then the distance), so that one dark condition does not fill the sheet."""
    synthetic = rows[rows["condition"] != SOURCE]

    def spread(frame: pd.DataFrame, farthest: bool) -> pd.DataFrame:
        ranked = frame.sort_values(["quantile", score], ascending=not farthest)
        return ranked.drop_duplicates("condition").head(count)

    picks = [("most typical", spread(synthetic, False)), ("kept but far", spread(synthetic[synthetic["kept"]], True))]
    for reason in REASONS:
        rejected = synthetic[synthetic["reason"].str.contains(f"{reason}:") & ~synthetic["kept"]]
        if len(rejected):
            picks.append((f"rejected:\n{reason} ({len(rejected)})", spread(rejected, reason != "near")))
    picked = [(title, [read_rgb(images[i]) for i in group["id"]]) for title, group in picks if len(group)]
    write_png(contact_sheet(picked, tile_height=tile_height), path)


def layout(rows: pd.DataFrame) -> dict:
    """Mean per-image mIoU of the real source val images and of the synthetic images, overall and per condition, and
    each relative to the real one; empty where the reference gives no mIoU (a detector, or unlabeled txt2img)."""
    real = rows.loc[rows["condition"] == SOURCE, "miou"].mean()
    synthetic = rows[(rows["condition"] != SOURCE) & rows["miou"].notna()]
    if np.isnan(real) or synthetic.empty:
        return {}

    def entry(mious: pd.Series) -> dict:
        return {"miou": round(float(mious.mean()), 2), "relative": round(float(mious.mean() / real), 4),
                "images": int(len(mious))}  # fmt: skip

    by_condition = {str(c): entry(group["miou"]) for c, group in synthetic.groupby("condition")}
    return {"real_miou": round(float(real), 2), **entry(synthetic["miou"]), "conditions": by_condition}


def layout_figure(summary: dict, path: Path) -> None:
    """A bar per condition (and all): synthetic-vs-label mIoU relative to real images, with the aim as a line."""
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(summary.get("conditions", {})) + 1.6))
    if summary:
        names = ["all", *summary["conditions"]]
        values = [summary["relative"], *(c["relative"] for c in summary["conditions"].values())]
        ax.barh(names[::-1], values[::-1], color=["tab:blue"] * (len(names) - 1) + ["tab:gray"])
        ax.axvline(1.0, color="0.3", lw=1, label=f"real source val ({summary['real_miou']:.1f} mIoU)")
        ax.axvline(LAYOUT_AIM, color="tab:red", lw=1, ls="--", label=f"aim: {LAYOUT_AIM:.0%} of real")
        ax.set_xlim(0, max(1.05, *values))
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no per-image mIoU: the reference is a detector, or the images have no labels",
                ha="center", va="center")  # fmt: skip
    ax.set_xlabel("source model's mIoU on synthetic images vs their reused labels, relative to real images")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
