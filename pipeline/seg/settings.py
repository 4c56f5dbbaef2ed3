"""The `train` section of params.yaml, checked: the shared schedule and model, and each method's own settings."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from pipeline.errors import InputError, check_keys
from pipeline.seg.models import ARCHS

METHODS = ("source", "naive", "drsf", "didex", "diga")
PAIRED = ("naive", "drsf", "didex", "diga")  # the methods that also read synthetic images
WITH_OPTIONS = ("drsf", "didex", "diga")  # the methods with a segmentor of their own (and its arguments)


@dataclass(frozen=True)
class TrainSettings:
    """One training run's settings: `train.common` plus the method's own section."""

    method: str
    arch: str
    pretrained: str | None
    iters: int
    batch: int  # images per iteration; paired methods take half from the source, half synthetic
    scale: tuple[int, int]  # (width, height) the images are resized to before cropping
    crop: tuple[int, int]  # (height, width)
    lr: float
    weight_decay: float
    warmup: int
    workers: int
    checkpoint_every: int
    options: dict = field(default_factory=dict)  # the method's segmentor arguments, from train.<method>


COMMON = [f.name for f in fields(TrainSettings) if f.name not in ("method", "options")]


def resolve_pretrained(value: str | None) -> str | None:
    """A backbone checkpoint: a local file, or a URL found in torch hub's checkpoint cache (nothing is downloaded)."""
    if not value:
        return None
    where = "params.yaml train.common.pretrained"
    if "://" not in str(value):
        path = Path(value).expanduser()
        if not path.is_file():
            raise InputError(where, f"no checkpoint at {value!r}", "give a local .pth file, a cached URL, or null")
        return str(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(str(value).split("?")[0]).name
    if not cached.is_file():
        raise InputError(where, f"{value} is not in torch hub's cache (looked for {cached})",
                         f"download it once: curl -L {value} -o {cached}; or give a local path")  # fmt: skip
    return str(cached)


def load_settings(cfg: dict, method: str) -> TrainSettings:
    """Check `train.common` and `train.<method>` and return the run's settings."""
    if method not in METHODS:
        raise InputError("params.yaml train", f"unknown method {method!r}", f"use one of: {', '.join(METHODS)}")
    common = dict(cfg.get("common") or {})
    check_keys(common, COMMON, "params.yaml train.common", "train.common")
    if common["arch"] not in ARCHS:
        raise InputError("params.yaml train.common.arch", f"unknown architecture {common['arch']!r}",
                         f"use one of: {', '.join(ARCHS)}")  # fmt: skip
    for key in ("iters", "batch", "checkpoint_every"):
        value = common[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"params.yaml train.common.{key}", f"{value!r} is not a positive integer", "set e.g. 4")
    warmup = common["warmup"]
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < common["iters"]:
        raise InputError("params.yaml train.common.warmup", f"{common['warmup']!r} is not in [0, iters)",
                         f"use fewer warm-up iterations than the {common['iters']} iterations")  # fmt: skip
    common["pretrained"] = resolve_pretrained(common["pretrained"])
    if method in PAIRED and common["batch"] % 2:
        raise InputError("params.yaml train.common.batch", f"{method} needs an even batch, got {common['batch']}",
                         "half of a batch is source images, half synthetic: use e.g. 4")  # fmt: skip
    options = cfg.get(method) or {}
    if not isinstance(options, dict) or (options and method not in WITH_OPTIONS):
        fix = "give key: value pairs" if method in WITH_OPTIONS else f"{method} takes none: use {{}}"
        raise InputError(f"params.yaml train.{method}", f"{options!r} is not a mapping of segmentor arguments", fix)
    return TrainSettings(method=method, options=dict(options),
                         **{k: tuple(v) if isinstance(v, list) else v for k, v in common.items()})  # fmt: skip
