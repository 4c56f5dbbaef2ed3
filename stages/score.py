"""DVC stages `score-source@<seed>` and `score@<method>-<seed>` (segmentation), `score-det-source@<seed>` and
`score-det@<method>-<seed>` (detection): one trained model on the source validation split (`evaluate.split`; a
source without one, such as GTA5 read as one train split, is not scored) and on every target domain, into
reports/scores/<task>/<method>-s<seed>/ (`pipeline.scores`). One stage per model, so that an experiment that
retrains one model scores only that one; `evaluate` gathers them.

A domain without the task's ground truth (no pixel labels, or no boxes) is not scored for that task.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import scores
from pipeline.errors import InputError, whole
from pipeline.manifest import read_manifest
from pipeline.training.run import run_name
from stages import params

DOMAINS = Path("data/domains")
SCORES = Path("reports/scores")
# task: (params section, ground-truth column, score columns, per-class column)
TASKS = {"seg": ("train", "label", ["mIoU", "aAcc"], "IoU"), "det": ("det", "boxes", ["mAP50"], "AP50")}


def scorer(task: str):
    """The task's `evaluate.scorer`, imported only for its task (mmseg and mmdet each take seconds to import)."""
    if task == "seg":
        from pipeline.seg.evaluate import scorer as seg

        return seg
    from pipeline.det.evaluate import scorer as det

    return det


def settings() -> tuple[dict, dict, dict[str, Path]]:
    """params.yaml's `data` and `evaluate` sections, checked, and the manifests every model is scored on."""
    data = params("data", required=("source", "targets"))
    evaluation = params("evaluate", required=("split", "batch", "gallery"))
    if not isinstance(evaluation["split"], str):
        raise InputError("params.yaml evaluate.split", f"{evaluation['split']!r} is not a split",
                         "set evaluate.split to a split name, e.g. val")  # fmt: skip
    whole(evaluation["batch"], "evaluate.batch")
    whole(evaluation["gallery"], "evaluate.gallery", minimum=0)
    manifests = scores.evaluated_manifests(DOMAINS, data["source"], data["targets"], evaluation["split"])
    for path in manifests.values():
        if not path.is_file():
            raise InputError(path, "missing", "run `dvc repro` (it builds the domains first)")
    return data, evaluation, manifests


def run(method: str, seed: int, task: str = "seg") -> str:
    if task not in TASKS:
        raise InputError("--task", f"unknown task {task!r}", "use seg or det")
    _, evaluation, manifests = settings()
    _, truth, columns, value = TASKS[task]
    name = run_name(method, seed)
    folder = Path("models") / task / name
    if not (folder / "model.pth").is_file():
        raise InputError(folder / "model.pth", "missing", "run `dvc repro` (it trains the models first)")
    scored = {d: path for d, path in manifests.items() if read_manifest(path)[truth].notna().any()}
    table, per_class, kept = scores.score(scorer(task), folder, scored, evaluation["batch"], evaluation["gallery"],
                                          columns, value, name)  # fmt: skip
    scores.write(SCORES / task / name, table, per_class, kept)
    shown = ", ".join(f"{d} {v:.1f}" for d, v in zip(table["domain"], table[columns[0]]))
    return f"wrote {SCORES / task / name}: {columns[0]} " + (shown or f"none (no domain has {truth})")
