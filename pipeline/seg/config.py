"""Segmentation as a training task: the methods of the `train` section, their data pipelines and segmentors, and
the Runner config of one run (the shared parts are `pipeline.training.runner`).

Source-only trains an EncoderDecoder on the source manifests; every other method reads (source, synthetic) pairs
(`pipeline.paired`) and uses its own segmentor, with `train.<method>` as the segmentor's arguments.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.seg.data import META_KEYS
from pipeline.paired import paired_dataset
from pipeline.seg.models import ARCHS, model_config
from pipeline.training.run import Task
from pipeline.training.runner import runner_config
from pipeline.training.settings import Methods, TrainSettings, method_model

METHODS = Methods(section="train", all=("source", "naive", "drsf", "didex", "diga"),
                  paired=("naive", "drsf", "didex", "diga"), with_options=("drsf", "didex", "diga"),
                  archs=tuple(ARCHS))  # fmt: skip

SEGMENTORS = {"drsf": "DRSFSegmentor", "didex": "DIDEXSegmentor", "diga": "DiGASegmentor"}
TEACHER_METHODS = ("didex", "diga")


def train_pipeline(settings: TrainSettings) -> list[dict]:
    return [
        dict(type="LoadImageFromFile"),
        dict(type="LoadManifestLabel"),
        dict(type="Resize", scale=tuple(settings.scale), keep_ratio=False),
        dict(type="RandomCrop", crop_size=tuple(settings.crop), cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackSegInputs", meta_keys=META_KEYS),
    ]


def eval_pipeline(scale: tuple[int, int]) -> list[dict]:
    """Images resized to `scale` (width, height) for the model; labels at full size (mmseg resizes predictions)."""
    return [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=tuple(scale), keep_ratio=False),
        dict(type="LoadManifestLabel"),
        dict(type="PackSegInputs", meta_keys=META_KEYS),
    ]


def segmentor(settings: TrainSettings, conditions: list[str]) -> dict | None:
    """The method's segmentor type and arguments (None: mmseg's EncoderDecoder)."""
    register()
    from mmseg.models.segmentors import EncoderDecoder
    from mmseg.registry import MODELS

    return method_model(settings, SEGMENTORS, MODELS, EncoderDecoder, METHODS.section, conditions)


def seg_runner_config(settings: TrainSettings, seed: int, work_dir: str | Path, source: list[str],
                      synthetic: str | None, conditions: list[str], curves: str | Path,
                      resume: bool = False) -> dict:  # fmt: skip
    """The Runner config: `source` manifests (and the `synthetic` one with its `conditions`, for paired methods);
    `resume` continues from the last checkpoint in `work_dir` and appends to the curves."""
    dataset, collate, per_call = paired_dataset("ManifestSegDataset", settings, METHODS, source, synthetic,
                                                conditions, train_pipeline(settings))  # fmt: skip
    hooks = [dict(type="EMATeacherHook")] if settings.method in TEACHER_METHODS else []
    model = model_config(settings.arch, segmentor(settings, conditions), settings.pretrained)
    return runner_config("mmseg", "SegLocalVisualizer", settings, seed, work_dir, model, dataset, collate, per_call,
                         hooks, curves, resume)  # fmt: skip


def register() -> None:
    import pipeline.seg.methods  # noqa: F401  (registers the methods' segmentors)


SEG = Task(name="seg", methods=METHODS, code=Path(__file__).parent, runner_config=seg_runner_config,
           register=register, source_column="label")  # fmt: skip
