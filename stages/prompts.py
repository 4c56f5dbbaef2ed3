"""DVC stage `prompts`: data/prompts.parquet, DIDEX-style prompts over the source domain's images."""

from __future__ import annotations

from pathlib import Path

from pipeline.manifest import read_manifest
from pipeline.prompts import build_prompts, check, write_prompts
from stages import params

OUT = Path("data/prompts.parquet")


def run() -> str:
    source = params("data", required=("source",))["source"]
    cfg = params("prompts", required=("split",))
    check(cfg)
    table = build_prompts(cfg, read_manifest(Path("data/domains") / source / f"{cfg['split']}.parquet"))
    write_prompts(table, OUT)
    counts = table["condition"].value_counts()
    return f"wrote {OUT}: {len(table)} prompts over {table['source_id'].nunique()} source images, " \
           f"{len(counts)} conditions ({counts.min()}-{counts.max()} each)"
