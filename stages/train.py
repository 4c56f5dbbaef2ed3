"""DVC stage `train@<method>-<seed>`: one segmentation model into models/seg/<method>-s<seed>/."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.seg.settings import PAIRED, load_settings
from pipeline.seg.train import run_name, train
from stages import params

SYNTHETIC = Path("data/filtered/kept.parquet")
MODELS = Path("models/seg")
CURVES = Path("reports/train")
WIP = Path(".dgsynth/wip")


def run(method: str, seed: int) -> str:
    settings = load_settings(params("train", required=("common",)), method)
    source = Path("data/domains") / params("data", required=("source",))["source"] / "train.parquet"
    for path in [source, *([SYNTHETIC] if method in PAIRED else [])]:
        if not path.is_file():
            raise InputError(path, "missing", "run `dvc repro` (it builds the data and the synthetic images first)")
    name = run_name(method, seed)
    return train(settings, seed, [source], SYNTHETIC, MODELS / name, CURVES / name, WIP)
