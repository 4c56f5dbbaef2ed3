"""DVC stage `synthesize`: data/synthetic/ (image shards and manifests) and reports/synthesize/ from the prompts."""

from __future__ import annotations

from pathlib import Path

from pipeline.synthesis import check, synthesize
from stages import params

PROMPTS = Path("data/prompts.parquet")
DOMAINS = Path("data/domains")
OUT = Path("data/synthetic")
REPORTS = Path("reports/synthesize/sheets")
WIP = Path(".dgsynth/wip")


def run() -> str:
    settings = check(params("synthesize"))
    return synthesize(settings, PROMPTS, DOMAINS, OUT, REPORTS, WIP)
