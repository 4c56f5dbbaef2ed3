"""DVC stages `train@<method>-<seed>` (segmentation) and `det@<method>-<seed>` (detection): one model into
models/<task>/<method>-s<seed>/, with its curves in reports/train/ (segmentation) or reports/det-train/ (detection)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.training.run import run_name, train
from pipeline.training.settings import load_settings
from stages import params

SYNTHETIC = Path("data/filtered/kept.parquet")
CURVES = {"seg": Path("reports/train"), "det": Path("reports/det-train")}
WIP = Path(".dgsynth/wip")


def task_of(name: str):
    """The training task called `name`: seg or det."""
    if name == "seg":
        from pipeline.seg.config import SEG

        return SEG
    if name == "det":
        from pipeline.det.config import DET

        return DET
    raise InputError("--task", f"unknown task {name!r}", "use seg or det")


def run(method: str, seed: int, task_name: str = "seg") -> str:
    task = task_of(task_name)
    settings = load_settings(params(task.methods.section, required=("common",)), method, task.methods)
    source = Path("data/domains") / params("data", required=("source",))["source"] / "train.parquet"
    for path in [source, *([SYNTHETIC] if method in task.methods.paired else [])]:
        if not path.is_file():
            raise InputError(path, "missing", "run `dvc repro` (it builds the data and the synthetic images first)")
    name = run_name(method, seed)
    return train(task, settings, seed, [source], SYNTHETIC, Path("models") / task.name / name,
                 CURVES[task.name] / name, WIP)  # fmt: skip
