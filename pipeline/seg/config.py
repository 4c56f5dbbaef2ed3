"""Segmentation as a training task: the methods of the `train` section, their data pipelines and segmentors, and
the Runner config of one run (the shared parts are `pipeline.training.runner`).

Source-only trains an EncoderDecoder on the source manifests, `source_aug` the same with `common.augment` forced on
(mmseg's Cityscapes/GTA5 augmentation: RandomResize over `ratio_range` x `scale` before the crop, then flip and
PhotoMetricDistortion); every other method reads (source, synthetic) pairs (`pipeline.paired`; DiGA's pairs a
synthetic image with its own source image under one crop and flip) and uses its own segmentor, with
`train.<method>` as the segmentor's arguments.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import mm
from pipeline.seg.data import META_KEYS
from pipeline.paired import paired_dataset
from pipeline.seg.models import ARCHS, model_config
from pipeline.training.run import Task
from pipeline.training.runner import runner_config
from pipeline.training.settings import Methods, TrainSettings, method_model

METHODS = Methods(section="train", all=("source", "source_aug", "naive", "drsf", "didex", "diga"),
                  paired=("naive", "drsf", "didex", "diga"), with_options=("drsf", "didex", "diga"),
                  archs=tuple(ARCHS), augment=True, augmented=("source_aug",))  # fmt: skip

SEGMENTORS = {"drsf": "DRSFSegmentor", "didex": "DIDEXSegmentor", "diga": "DiGASegmentor"}
TEACHER_METHODS = ("didex", "diga")
BY_SOURCE = ("diga",)  # methods that pair each synthetic image with its own source image
RATIO_RANGE = (0.5, 2.0)  # the augmentation's scales, relative to `scale` (mmseg's Cityscapes and GTA5 configs)


def train_pipeline(settings: TrainSettings) -> list[dict]:
    """Resize to `scale` (with `augment`: to a random ratio of it), crop, flip (with `augment`: photometric
    distortion); the geometric steps are `pipeline.seg.data`'s shared ones, so paired images can share them."""
    scale = tuple(settings.scale)
    resize = (dict(type="SharedRandomResize", scale=scale, ratio_range=RATIO_RANGE, keep_ratio=False)
              if settings.augment else dict(type="Resize", scale=scale, keep_ratio=False))  # fmt: skip
    return [
        dict(type="LoadImageFromFile", backend_args=mm.files()),
        dict(type="LoadManifestLabel", backend_args=mm.files()),
        resize,
        dict(type="SharedRandomCrop", crop_size=tuple(settings.crop), cat_max_ratio=0.75),
        dict(type="SharedRandomFlip", prob=0.5),
        *([dict(type="PhotoMetricDistortion")] if settings.augment else []),
        dict(type="PackSegInputs", meta_keys=META_KEYS),
    ]


def eval_pipeline(scale: tuple[int, int]) -> list[dict]:
    """Images resized to `scale` (width, height) for the model; labels at full size (mmseg resizes predictions)."""
    return [
        dict(type="LoadImageFromFile", backend_args=mm.files()),
        dict(type="Resize", scale=tuple(scale), keep_ratio=False),
        dict(type="LoadManifestLabel", backend_args=mm.files()),
        dict(type="PackSegInputs", meta_keys=META_KEYS),
    ]


def segmentor(settings: TrainSettings, conditions: list[str]) -> dict | None:
    """The method's segmentor type and arguments (None: mmseg's EncoderDecoder); DRSF's gets the condition names
    (its domain classes group them), DiGA's the iterations (its prototype warm-up is a fraction of them)."""
    register()
    from mmseg.models.segmentors import EncoderDecoder
    from mmseg.registry import MODELS

    model = method_model(settings, SEGMENTORS, MODELS, EncoderDecoder, METHODS.section, conditions)
    run = {"drsf": dict(conditions=list(conditions)), "diga": dict(iters=settings.iters)}.get(settings.method, {})
    return model and dict(model, **run)


def seg_runner_config(settings: TrainSettings, seed: int, work_dir: str | Path, source: list[str],
                      synthetic: str | None, conditions: list[str], curves: str | Path,
                      resume: bool = False) -> dict:  # fmt: skip
    """The Runner config: `source` manifests (and the `synthetic` one with its `conditions`, for paired methods);
    `resume` continues from the last checkpoint in `work_dir` and appends to the curves."""
    dataset, collate, per_call = paired_dataset("ManifestSegDataset", settings, METHODS, source, synthetic,
                                                conditions, train_pipeline(settings),
                                                by_source=settings.method in BY_SOURCE)  # fmt: skip
    hooks = [dict(type="EMATeacherHook")] if settings.method in TEACHER_METHODS else []
    model = model_config(settings.arch, segmentor(settings, conditions), settings.pretrained)
    return runner_config("mmseg", "SegLocalVisualizer", settings, seed, work_dir, model, dataset, collate, per_call,
                         hooks, curves, resume)  # fmt: skip


def register() -> None:
    import pipeline.seg.methods  # noqa: F401  (registers the methods' segmentors)


SEG = Task(name="seg", methods=METHODS, code=Path(__file__).parent, runner_config=seg_runner_config,
           register=register, source_column="label")  # fmt: skip
