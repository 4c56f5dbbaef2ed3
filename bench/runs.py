"""The Runner config of a short benchmark run (bench/train.py, profile_train.py, schedule.py): one method of a task
with params.yaml's settings, some `common` keys changed, on the real source manifest and, for a paired method, the
synthetic images (run `dvc repro synthesize` first); seed 0, in the bench's work dir, no curves logged."""

from __future__ import annotations

from pathlib import Path

from pipeline.paired import synthetic_conditions
from pipeline.training.settings import load_settings

SYNTHETIC = Path("data/synthetic/train.parquet")


def bench_config(task, method: str, cfg: dict, source: Path, work: str | Path, **common) -> dict:
    """The Runner config of `method` with the task's section `cfg` of params.yaml, `common` laid over its `common`."""
    settings = load_settings({**cfg, "common": {**cfg["common"], **common}}, method, task.methods)
    conditions = synthetic_conditions(str(SYNTHETIC)) if method in task.methods.paired else []
    config = task.runner_config(settings, 0, work, [str(source)], str(SYNTHETIC), conditions, Path(work) / "curves")
    config["visualizer"] = dict(type=config["visualizer"]["type"])
    return config
