"""The MMEngine Runner config around a task's model and training data, as a plain dict: the same schedule,
checkpoints, hooks, curves and launcher for segmentation and detection.

The schedule is iteration-based (AdamW, linear warm-up, then poly decay; mixed precision on CUDA unless
`common.amp` is false), checkpoints (with the RNG states, see
`pipeline.training.random_state`) go to the work dir every `checkpoint_every` iterations, so an interrupted run
resumes where it stood; a tqdm bar shows the loss, and the losses go to DVCLive (`GitFreeDVCLiveVisBackend`, see
`pipeline.mm`) under `curves`. On the CPU a run is bit-reproducible: the same seed gives the same weights, resumed
or not.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.training.progress import ProgressBarHook  # noqa: F401  (registers the hook)
from pipeline.training.random_state import RandomStateHook  # noqa: F401  (registers the hook)
from pipeline.training.settings import TrainSettings


def runner_config(scope: str, visualizer: str, settings: TrainSettings, seed: int, work_dir: str | Path, model: dict,
                  dataset: dict, collate: str, per_call: int, hooks: list[dict], curves: str | Path,
                  resume: bool) -> dict:  # fmt: skip
    """The Runner config in the registry `scope` (mmseg, mmdet) with its `visualizer` type: `per_call` samples of
    `dataset` per loader call, batched by `collate`; `hooks` come after the progress bar; `resume` continues from the
    last checkpoint in `work_dir` and appends to the curves."""
    iters = settings.iters
    cuda = torch.cuda.is_available()
    return dict(
        default_scope=scope,
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(batch_size=per_call, num_workers=settings.workers,
                              persistent_workers=settings.workers > 0,
                              sampler=dict(type="InfiniteSampler", shuffle=True),
                              collate_fn=dict(type=collate), dataset=dataset),  # fmt: skip
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=settings.lr, betas=(0.9, 0.999),
                                          weight_decay=settings.weight_decay), **precision(settings.amp, cuda)),
        param_scheduler=[
            dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=settings.warmup),
            dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=settings.warmup, end=iters),
        ],
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=max(1, min(50, iters // 10)), log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            # two kept: mmengine deletes the oldest before writing the next, and last_checkpoint names the newer
            # until that one is whole, so a kill while saving still leaves the checkpoint it names
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=settings.checkpoint_every,
                            max_keep_ckpts=2, save_last=True),  # fmt: skip
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        custom_hooks=[dict(type="ProgressBarHook"), dict(type="RandomStateHook", interval=settings.checkpoint_every),
                      *hooks],  # fmt: skip
        visualizer=dict(type=visualizer, vis_backends=[dvclive_backend(curves, resume)]),
        log_processor=dict(by_epoch=False),
        log_level="WARNING",
        # On the CPU, torch's deterministic algorithms: otherwise the backward of indexing with repeated indices
        # (MDSF's mixing partners) adds into its gradient with atomic float adds from several threads, in a varying
        # order, and the last bits of the weights (then, over hundreds of iterations, the scores) differ between runs.
        # On a GPU they would refuse ops without a deterministic kernel (e.g. bilinear upsampling's backward).
        randomness=dict(seed=seed, deterministic=not cuda),
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="nccl" if cuda else "gloo")),  # fmt: skip
        # Under torchrun mmengine's default DDP wrapper gets device_ids=[LOCAL_RANK], which DDP refuses for a CPU
        # model: on CPU the same wrapper without them. Buffers (BN statistics) stay per rank, as in mmengine's default.
        # Every trainable parameter gets a gradient in every step (the teachers' parameters never require grad, DRSF's
        # discriminators see every paired batch), so DDP needs no find_unused_parameters.
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


def precision(amp: bool, cuda: bool) -> dict:
    """The optimizer wrapper's type: mixed precision on CUDA when `amp` (bfloat16 where the GPU has it, else float16
    with a dynamic loss scale), fp32 otherwise (AmpOptimWrapper refuses to run without a GPU)."""
    if not (amp and cuda):
        return dict(type="OptimWrapper")
    return dict(type="AmpOptimWrapper", dtype="bfloat16" if torch.cuda.is_bf16_supported() else "float16")
