"""DVC stage `report`: reports/index.html (a static page that opens from disk), reports/summary.md (the results
tables in Markdown) and reports/report/ (the report's own figures), from what the other stages wrote under
reports/ and data/prompts.parquet; only reports/metrics.json must exist."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import check_keys, whole
from pipeline.report.build import build
from stages import params


def run() -> str:
    cfg = params("report", required=("samples", "title"))
    check_keys(cfg, ["samples", "title"], "params.yaml report", "report")
    samples = whole(cfg["samples"], "report.samples", minimum=0)
    data = params("data", required=("source", "targets"))
    return build(Path("."), str(cfg["title"]), samples, data["source"], list(data["targets"]))
