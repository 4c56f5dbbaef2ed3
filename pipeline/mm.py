"""The one adapter between dgsynth and the OpenMMLab stack (mmengine 0.10.7, mmcv 2.1.0, mmseg 1.2.2, mmdet 3.3.0).

Every workaround for those stale packages lives here, each with the upstream problem it answers; nothing else in
the code patches mm*. Call `setup()` before building a Runner.

- Checkpoints on torch >= 2.6 (mmengine issue 1655): mmengine calls `torch.load` without `weights_only`, and torch
  now defaults to `weights_only=True`, which refuses mmengine's own checkpoints (they pickle a HistoryBuffer and numpy
  dtypes). We replace mmengine's local-file loader: files under a folder registered with `trust_checkpoints_under`
  (the pipeline's own work dirs) load fully; any other file keeps `weights_only=True`.
- `mmseg::`/`mmdet::` base-config lookups need `pkg_resources` (removed from setuptools >= 82): `package_config`
  loads the configs shipped inside the packages by path instead.
- mmengine's `DVCLiveVisBackend` runs `dvc init -f --no-scm` in the current folder when git has no user name
  (it asks pygit2 for a default signature): in a DVC project that would re-initialise `.dvc`. `setup()` registers
  `GitFreeDVCLiveVisBackend`, the same backend without that step (DVCLive itself needs no git user), and without
  logging the whole Runner config as DVCLive params (a second params.yaml beside the curves; DVC already tracks the
  project's params.yaml, and `pipeline.training.run` saves the model config with the weights).
- Several CPU processes (torchrun): mmengine's `pytorch` launcher calls `torch.cuda.set_device(LOCAL_RANK)` before
  joining the process group, which fails without CUDA, and wraps the model in DDP with `device_ids=[LOCAL_RANK]`,
  which DDP refuses for a CPU model. `join_cpu_processes()` joins the gloo group first (the Runner then skips its own
  init), and `pipeline.training.runner` gives the CPU wrapper no `device_ids`. mmengine never leaves the group:
  `leave_processes()` does, after training.
- The synthetic images are members of tar archives (`pipeline.packed`). mmcv's LoadImageFromFile and mmseg's
  LoadAnnotations read through mmengine's file backends: `files()` is the `backend_args` the task configs give them,
  naming a local backend that reads a path through an archive as the member (any other path as the file).
- mmcv's CPU RoIAlign and NMS run on one thread (and RoIAlign's backward pass works out every bilinear weight once
  per channel): a third of a small detector's training time on 2 cores. `setup()` sends mmcv's average-pooling
  RoIAlign and its NMS on CPU float tensors to `pipeline.det.kernels`, which gives the same bits on all threads (built
  at the first such call, so segmentation never loads it); anything else (max pooling, CUDA, half precision) still
  goes to mmcv's kernels.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from pipeline.det.kernels import kernel

_TRUSTED: list[Path] = []


def trust_checkpoints_under(folder: str | Path) -> None:
    """Checkpoints under `folder` were written by this pipeline: load them with full unpickling."""
    folder = Path(folder).resolve()
    if folder not in _TRUSTED:
        _TRUSTED.append(folder)


def _load_local_checkpoint(filename: str, map_location=None):
    path = Path(filename).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{filename} can not be found.")
    trusted = any(path.is_relative_to(root) for root in _TRUSTED)
    return torch.load(path, map_location=map_location, weights_only=not trusted)


@functools.cache
def setup() -> None:
    """Install the checkpoint loader, the DVCLive backend and the CPU kernels above (idempotent)."""
    from mmengine.registry import VISBACKENDS
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmengine.visualization import DVCLiveVisBackend

    CheckpointLoader.register_scheme(prefixes="", loader=_load_local_checkpoint, force=True)

    class GitFreeDVCLiveVisBackend(DVCLiveVisBackend):
        def _init_env(self):
            from dvclive import Live

            self._init_kwargs = {"dir": self._save_dir, **(self._init_kwargs or {})}
            self._dvclive = Live(**self._init_kwargs)

        def add_config(self, config, **kwargs):
            pass

    VISBACKENDS.register_module("GitFreeDVCLiveVisBackend", module=GitFreeDVCLiveVisBackend, force=True)
    _route_cpu_kernels()


# NMS tests every pair of boxes into a bit matrix (n^2 / 8 bytes): larger calls go to mmcv's kernel. mmdet's batched_nms
# runs class by class above 10,000 boxes, so its calls stay below this.
NMS_BOXES = 16384


class _CpuKernels:
    """mmcv's compiled ops as `mmcv.ops.roi_align` and `mmcv.ops.nms` call them, with average-pooling RoIAlign of
    contiguous float CPU tensors and NMS of float32 CPU boxes computed by pipeline/det/kernels (built at the first)."""

    def __init__(self, ops):
        self.ops = ops

    def __getattr__(self, name: str):
        return getattr(self.ops, name)

    @staticmethod
    def _kernel(dtypes: tuple, *tensors: torch.Tensor, contiguous: bool = True):
        """The compiled kernels when every tensor is on the CPU, of one dtype among `dtypes` (and contiguous), else
        None (as where they could not be built)."""
        dtype = tensors[0].dtype
        takes = dtype in dtypes and all(
            t.device.type == "cpu" and t.dtype == dtype and (t.is_contiguous() or not contiguous) for t in tensors
        )
        return kernel() if takes else None

    def _roi_align(self, options: dict, *tensors: torch.Tensor):
        """The compiled kernels for an average-pooling RoIAlign of float `tensors`, else None."""
        return self._kernel((torch.float32, torch.float64), *tensors) if options["pool_mode"] == 1 else None

    def roi_align_forward(self, input, rois, output, argmax_y, argmax_x, **options):
        if (compiled := self._roi_align(options, input, rois, output)) is None:
            return self.ops.roi_align_forward(input, rois, output, argmax_y, argmax_x, **options)
        compiled.roi_align_forward(input, rois, output, options["spatial_scale"], options["sampling_ratio"],
                                   options["aligned"])  # fmt: skip

    def roi_align_backward(self, grad_output, rois, argmax_y, argmax_x, grad_input, **options):
        if (compiled := self._roi_align(options, grad_input, rois, grad_output)) is None:
            return self.ops.roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input, **options)
        compiled.roi_align_backward(grad_output, rois, grad_input, options["spatial_scale"], options["sampling_ratio"],
                                    options["aligned"])  # fmt: skip

    def nms(self, boxes, scores, iou_threshold, offset):
        compiled = self._kernel((torch.float32,), boxes, scores, contiguous=False) if len(boxes) <= NMS_BOXES else None
        if compiled is None:
            return self.ops.nms(boxes, scores, iou_threshold=iou_threshold, offset=offset)
        return compiled.nms(boxes, scores, iou_threshold, offset)


def _route_cpu_kernels() -> None:
    import importlib

    # the modules (mmcv.ops.roi_align is also a function); both call mmcv's one compiled module, mmcv._ext
    modules = [importlib.import_module(name) for name in ("mmcv.ops.roi_align", "mmcv.ops.nms")]
    if not isinstance(modules[0].ext_module, _CpuKernels):
        router = _CpuKernels(modules[0].ext_module)
        for module in modules:
            module.ext_module = router


def files() -> dict:
    """The loaders' `backend_args`: mmengine's local file backend, reading archive members too."""
    _register_packed_backend()
    return {"backend": "dgsynth-packed"}


@functools.cache
def _register_packed_backend() -> None:
    from mmengine.fileio import LocalBackend, register_backend

    from pipeline.packed import read_bytes

    class PackedBackend(LocalBackend):
        def get(self, filepath) -> bytes:
            return read_bytes(filepath)

    register_backend("dgsynth-packed", PackedBackend, force=True)


def join_cpu_processes() -> None:
    """Under torchrun without CUDA, join the gloo process group before a Runner is built (see the module)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo")


def leave_processes() -> None:
    """After training, leave the process group (ours or the Runner's) on every rank: one left to the interpreter's
    exit can abort the process ("terminate called without an active exception", seen once in 5 runs of
    tests/test_seg_dist.py's two-node case), which torchrun reports as the whole run's failure."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def package_config(package: str, relative: str):
    """A config shipped inside an OpenMMLab package, e.g. ("mmseg", "_base_/models/deeplabv3plus_r50-d8.py")."""
    import importlib

    from mmengine.config import Config

    root = Path(importlib.import_module(package).__file__).parent / ".mim" / "configs"
    path = root / relative
    if not path.is_file():
        raise FileNotFoundError(f"{package} ships no config {relative} (looked in {root})")
    return Config.fromfile(path)


def ops_status() -> str:
    """'ok' when mmcv's compiled ops load and run (nms on two boxes), else the error."""
    try:
        from mmcv.ops import nms

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
        _, keep = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
        return "ok" if keep.tolist() == [0] else f"nms gave {keep.tolist()}"
    except Exception as error:  # noqa: BLE001  (doctor reports any failure)
        return f"{type(error).__name__}: {error}"
