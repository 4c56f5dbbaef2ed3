"""The MMEngine Runner config of one training run, as a plain dict built from `TrainSettings`.

Source-only trains an EncoderDecoder on the source manifests; every other method reads (source, synthetic) pairs
(`pipeline.seg.data`) and uses its own segmentor, with `train.<method>` as the segmentor's arguments. The schedule is
iteration-based (AdamW, linear warm-up, then poly decay), checkpoints go to the work dir every `checkpoint_every`
iterations (so an interrupted run resumes), and the losses go to DVCLive (`DVCLiveVisBackend`) under `curves`.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch

from pipeline.errors import InputError
from pipeline.seg.data import META_KEYS
from pipeline.seg.models import model_config
from pipeline.seg.progress import ProgressBarHook  # noqa: F401  (registers the hook)
from pipeline.seg.settings import PAIRED, TrainSettings

SEGMENTORS = {"drsf": "DRSFSegmentor", "didex": "DIDEXSegmentor", "diga": "DiGASegmentor"}
TEACHER_METHODS = ("didex", "diga")
ENCODER_DECODER_ARGS = {"backbone", "decode_head", "neck", "auxiliary_head", "train_cfg", "test_cfg",
                        "data_preprocessor", "pretrained", "init_cfg"}  # fmt: skip


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
    if settings.method not in SEGMENTORS:
        return None
    import pipeline.seg.methods  # noqa: F401  (registers the segmentors)
    from mmseg.registry import MODELS

    known = inspect.signature(MODELS.get(SEGMENTORS[settings.method]).__init__).parameters
    unknown = sorted(k for k in settings.options if k not in known or k == "num_pseudo_domains")
    if unknown:
        takes = [k for k, p in known.items() if p.default is not p.empty and k not in ENCODER_DECODER_ARGS]
        raise InputError(f"params.yaml train.{settings.method}", f"unknown argument {unknown[0]!r}",
                         f"{settings.method} takes: {', '.join(takes)}")  # fmt: skip
    extra = dict(num_pseudo_domains=len(conditions)) if settings.method == "drsf" else {}
    return dict(type=SEGMENTORS[settings.method], **extra, **settings.options)


def runner_config(settings: TrainSettings, seed: int, work_dir: str | Path, source: list[str],
                  synthetic: str | None, conditions: list[str], curves: str | Path,
                  resume: bool = False) -> dict:  # fmt: skip
    """The Runner config: `source` manifests (and the `synthetic` one with its `conditions`, for paired methods);
    `resume` continues from the last checkpoint in `work_dir` and appends to the curves."""
    pipeline = train_pipeline(settings)
    dataset = dict(type="ManifestSegDataset", manifests=list(source), pipeline=pipeline)
    collate = "pseudo_collate"
    if settings.method in PAIRED:
        synthetic_set = dict(type="ManifestSegDataset", manifests=[synthetic], domain="synthetic",
                             conditions=conditions, pipeline=pipeline)  # fmt: skip
        dataset, collate = dict(type="PairedDataset", source=dataset, synthetic=synthetic_set), "paired_collate"
    per_call = settings.batch // 2 if settings.method in PAIRED else settings.batch  # pairs, or images
    iters = settings.iters
    cuda = torch.cuda.is_available()
    hooks = [dict(type="ProgressBarHook")]
    if settings.method in TEACHER_METHODS:
        hooks.append(dict(type="MeanTeacherHook"))
    return dict(
        default_scope="mmseg",
        model=model_config(settings.arch, segmentor(settings, conditions), settings.pretrained),
        work_dir=str(work_dir),
        train_dataloader=dict(batch_size=per_call, num_workers=settings.workers,
                              persistent_workers=settings.workers > 0,
                              sampler=dict(type="InfiniteSampler", shuffle=True),
                              collate_fn=dict(type=collate), dataset=dataset),  # fmt: skip
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1),
        optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=settings.lr, betas=(0.9, 0.999),
                                                               weight_decay=settings.weight_decay)),  # fmt: skip
        param_scheduler=[
            dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=settings.warmup),
            dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=settings.warmup, end=iters),
        ],
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=max(1, min(50, iters // 10)), log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=settings.checkpoint_every,
                            max_keep_ckpts=1, save_last=True),  # fmt: skip
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        custom_hooks=hooks,
        visualizer=dict(type="SegLocalVisualizer", vis_backends=[dvclive_backend(curves, resume)]),
        log_processor=dict(by_epoch=False),
        log_level="WARNING",
        randomness=dict(seed=seed),
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="nccl" if cuda else "gloo")),  # fmt: skip
        # Under torchrun mmengine's default DDP wrapper gets device_ids=[LOCAL_RANK], which DDP refuses for a CPU
        # model: on CPU the same wrapper without them. Buffers (BN statistics) stay per rank, as in mmengine's default.
        # Every trainable parameter gets a gradient in every step (the teachers' parameters never require grad, DRSF's
        # discriminator sees every paired batch), so DDP needs no find_unused_parameters.
        model_wrapper_cfg=None if cuda else dict(type="MMDistributedDataParallel", device_ids=None,
                                                 forward_sync_buffers=False),  # fmt: skip
        launcher="pytorch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "none",
        resume=resume,
    )


def dvclive_backend(curves: str | Path, resume: bool) -> dict:
    """mmengine's DVCLive backend writing only metrics under `curves`: no dvc.yaml edits, no experiment of its own
    (the stage runs inside `dvc repro` or `dvc exp run`), no config files logged as artifacts."""
    return dict(type="GitFreeDVCLiveVisBackend", save_dir=str(curves), artifact_suffix=(),
                init_kwargs=dict(dvcyaml=None, save_dvc_exp=False, report=None, monitor_system=False,
                                 resume=resume))  # fmt: skip


