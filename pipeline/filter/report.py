"""What `filter` shows people: distance histograms per condition, kept/rejected counts, and a contact sheet.

- `histograms`: one panel per condition, the synthetic images' distances (kept and rejected stacked) over the held-out
  source validation images' distances, so that 'far' reads against what real source images score;
- `conditions`: images, kept and rejected per condition (a DVC bar plot);
- `sheet`: rows of the most typical synthetic images, the kept images farthest from the source, and the rejected ones
  per reason, farthest first, one image per condition in a row.
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
