"""DVC stage `data@<domain>`: build data/domains/<domain>/ (manifests per split plus rendered or converted files)."""

from __future__ import annotations

from pathlib import Path

from pipeline.domains import build_domain
from pipeline.errors import InputError
from stages import params

OUT = Path("data/domains")


def run(domain: str, workers: int = 1) -> dict[str, int]:
    """Build the domain with `workers` processes; print the readers' notes (label values set to ignore) and return the
    rows per split."""
    cfg = params("data", required=("domains",))
    if domain not in cfg["domains"]:
        raise InputError("params.yaml data.domains", f"no domain {domain!r}", f"use one of: {', '.join(cfg['domains'])}")
    built = build_domain(domain, cfg["domains"][domain], cfg.get("world"), OUT / domain, workers)
    for note in built.notes:
        print(note)
    return built.counts
