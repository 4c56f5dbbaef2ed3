"""Detection as a training task: the methods of the `det` section, their data pipelines and detectors, and the
Runner config of one run (the shared parts are `pipeline.training.runner`).

Source-only trains mmdet's FasterRCNN on the source manifests; every other method reads (source, synthetic) pairs
(`pipeline.paired`) and uses its own detector, with `det.<method>` as the detector's arguments. The class set is
the source domain's (`pipeline.det.data.source_classes`), recorded in the exported model's config.json.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import mm
from pipeline.det.data import META_KEYS, source_classes
from pipeline.det.models import ARCHS, model_config
from pipeline.paired import paired_dataset
from pipeline.training.run import Task
from pipeline.training.runner import runner_config
from pipeline.training.settings import Methods, TrainSettings, method_model

METHODS = Methods(section="det", all=("source", "naive", "drsf", "mt"), paired=("naive", "drsf", "mt"),
                  with_options=("drsf", "mt"), archs=tuple(ARCHS))  # fmt: skip
DETECTORS = {"naive": "LabeledDetector", "drsf": "DRSFDetector", "mt": "MeanTeacherDetector"}


def train_pipeline(settings: TrainSettings) -> list[dict]:
    """Resize to `scale`, a random crop of `crop` (height, width) that may hold no box (a negative), a flip."""
    return [
        dict(type="LoadImageFromFile", backend_args=mm.files()),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="Resize", scale=tuple(settings.scale), keep_ratio=False),
        # mmdet's absolute crop_size is (width, height); `crop` is (height, width) as in mmseg
        dict(type="RandomCrop", crop_size=(settings.crop[1], settings.crop[0]), allow_negative_crop=True),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackDetInputs", meta_keys=META_KEYS),
    ]


def eval_pipeline(scale: tuple[int, int]) -> list[dict]:
    """Images resized to `scale` (width, height); mmdet rescales the predicted boxes to the original image."""
    return [
        dict(type="LoadImageFromFile", backend_args=mm.files()),
        dict(type="Resize", scale=tuple(scale), keep_ratio=False),
        dict(type="PackDetInputs", meta_keys=META_KEYS),
    ]


def detector(settings: TrainSettings, conditions: list[str]) -> dict | None:
    """The method's detector type and arguments (None: mmdet's FasterRCNN)."""
    register()
    from mmdet.models.detectors import FasterRCNN
    from mmdet.registry import MODELS

    return method_model(settings, DETECTORS, MODELS, FasterRCNN, METHODS.section, conditions)


def det_runner_config(settings: TrainSettings, seed: int, work_dir: str | Path, source: list[str],
                      synthetic: str | None, conditions: list[str], curves: str | Path,
                      resume: bool = False) -> dict:  # fmt: skip
    """The Runner config: `source` manifests (and the `synthetic` one with its `conditions`, for paired methods)."""
    classes = source_classes(source[0])
    dataset, collate, per_call = paired_dataset("ManifestDetDataset", settings, METHODS, source, synthetic,
                                                conditions, train_pipeline(settings), classes=classes)  # fmt: skip
    hooks = [dict(type="EMATeacherHook")] if settings.method == "mt" else []
    model = model_config(settings.arch, len(classes), detector(settings, conditions), settings.pretrained)
    return runner_config("mmdet", "DetLocalVisualizer", settings, seed, work_dir, model, dataset, collate, per_call,
                         hooks, curves, resume)  # fmt: skip


def register() -> None:
    import pipeline.det.methods  # noqa: F401  (registers the methods' detectors)


DET = Task(name="det", methods=METHODS, code=Path(__file__).parent, runner_config=det_runner_config,
           register=register, source_column="boxes",
           describe=lambda source: {"classes": source_classes(str(source[0]))})  # fmt: skip
