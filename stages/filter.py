"""DVC stage `filter`: data/filtered/{kept,rejected}.parquet from data/synthetic/, scored by the source-only model
(`filter.model`: a segmentor, or a detector for detection-only runs); reports/filter/ (metrics, histograms per
condition, counts per condition, a contact sheet, every score) and reports/synthesize/layout.{json,png} (how well the
synthetic images fit the labels they reuse, per condition)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.filter import report
from pipeline.filter.apply import apply
from pipeline.filter.rules import load_settings
from pipeline.manifest import read_manifest
from pipeline.tables import write_csv, write_json
from stages import params

SYNTHETIC = Path("data/synthetic/train.parquet")
DOMAINS = Path("data/domains")
OUT = Path("data/filtered")
REPORTS = Path("reports/filter")
LAYOUT = Path("reports/synthesize/layout")
HELD_OUT = ("val", "test")  # the source split scored as the reference of real images (Diverse-Weather has no val)


def run() -> str:
    settings = load_settings(params("filter"))
    if not SYNTHETIC.is_file():
        raise InputError(SYNTHETIC, "missing", "run `dvc repro synthesize` first (or `dvc repro`)")
    source = DOMAINS / params("data", required=("source",))["source"]
    held_out = [source / f"{split}.parquet" for split in HELD_OUT if (source / f"{split}.parquet").is_file()]
    rows = apply(settings, source / "train.parquet", held_out[0] if held_out else None, SYNTHETIC, OUT)
    synthetic = rows[rows["condition"] != report.SOURCE]
    kept = int(synthetic["kept"].sum())
    reasons = {r: int(synthetic["reason"].str.contains(f"{r}:").sum()) for r in report.REASONS}
    write_json({"filter": dict(enabled=settings.enabled, images=len(synthetic), kept=kept,
                               kept_fraction=round(kept / len(synthetic), 4), rules_reject=reasons,
                               **rows.attrs["summary"])}, REPORTS / "metrics.json")  # fmt: skip
    layout = report.layout(rows)
    write_json({"layout": layout}, LAYOUT.with_suffix(".json"))
    report.layout_figure(layout, LAYOUT.with_suffix(".png"))
    write_csv(rows, REPORTS / "scores.csv")
    write_csv(report.conditions(rows), REPORTS / "conditions.csv")
    report.histograms(rows, settings.score, REPORTS / "histograms.png")
    images = dict(zip(*read_manifest(SYNTHETIC)[["id", "image"]].to_numpy().T))
    report.sheet(rows, images, settings.score, settings.sheet["images"], REPORTS / "sheet.png",
                 settings.sheet["tile_height"])  # fmt: skip
    return (f"wrote {OUT}: kept {kept} of {len(synthetic)} synthetic images"
            f"{'' if settings.enabled else ' (filter disabled: all kept)'}; rules reject "
            + ", ".join(f"{n} {r}" for r, n in reasons.items()))
