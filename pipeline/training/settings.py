"""A training section of params.yaml (`train` for segmentation, `det` for detection), checked: the shared schedule
and model (`common`), and each method's own settings."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from pipeline.errors import InputError, check_keys, flag, number, whole


@dataclass(frozen=True)
class Methods:
    """A task's methods: `section` of params.yaml, every method, those that also read synthetic images (`paired`),
    those with a model class of their own whose arguments `train.<method>` holds (`with_options`), the
    architectures `common.arch` may name, whether `common` takes `augment` (the task's standard photometric and
    multi-scale augmentation) and the methods that always train with it (`augmented`)."""

    section: str
    all: tuple[str, ...]
    paired: tuple[str, ...]
    with_options: tuple[str, ...]
    archs: tuple[str, ...]
    augment: bool = False
    augmented: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainSettings:
    """One training run's settings: `train.common` plus the method's own section."""

    method: str
    arch: str
    pretrained: str | None
    iters: int
    batch: int  # images per iteration (per process); paired methods take half from the source, half synthetic
    scale: tuple[int, int]  # (width, height) the images are resized to before cropping
    crop: tuple[int, int]  # (height, width)
    lr: float
    weight_decay: float
    warmup: int
    workers: int
    checkpoint_every: int
    augment: bool = False  # the task's standard augmentation (`common.augment`, where the task has one)
    amp: bool = True  # mixed precision on CUDA (`common.amp`: AmpOptimWrapper, bfloat16 where supported); CPU: fp32
    options: dict = field(default_factory=dict)  # the method's model arguments, from <section>.<method>


COMMON = [f.name for f in fields(TrainSettings) if f.name not in ("method", "options", "augment", "amp")]
COMMON_SIZES = {"scale": "[512, 256] (width, height)", "crop": "[256, 256] (height, width)"}


def resolve_pretrained(value: str | None, where: str) -> str | None:
    """A backbone checkpoint: a local file, or a URL found in torch hub's checkpoint cache (nothing is downloaded)."""
    if not value:
        return None
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


def load_settings(cfg: dict, method: str, methods: Methods) -> TrainSettings:
    """Check `<section>.common` and `<section>.<method>` and return the run's settings."""
    section = f"params.yaml {methods.section}"
    if method not in methods.all:
        raise InputError(section, f"unknown method {method!r}", f"use one of: {', '.join(methods.all)}")
    common = {"amp": True, **(cfg.get("common") or {})}  # optional, on by default
    if methods.augment:
        common = {"augment": False, **common}  # optional: a common section shared with a task without it stays valid
    check_keys(common, [*COMMON, "amp", *(["augment"] if methods.augment else [])], f"{section}.common",
               f"{methods.section}.common")  # fmt: skip
    if common["arch"] not in methods.archs:
        raise InputError(f"{section}.common.arch", f"unknown architecture {common['arch']!r}",
                         f"use one of: {', '.join(methods.archs)}")  # fmt: skip
    key = f"{methods.section}.common"
    for name in ("iters", "batch", "checkpoint_every"):
        whole(common[name], f"{key}.{name}")
    whole(common["workers"], f"{key}.workers", minimum=0)
    number(common["lr"], f"{key}.lr", positive=True)
    number(common["weight_decay"], f"{key}.weight_decay")
    for name in ("scale", "crop"):
        pair = common[name]
        if not isinstance(pair, list) or len(pair) != 2 or not all(type(v) is int and v > 0 for v in pair):
            raise InputError(f"{section}.common.{name}", f"{pair!r} is not a size",
                             f"set {key}.{name} to two whole numbers >= 1, e.g. {COMMON_SIZES[name]}")  # fmt: skip
    warmup = common["warmup"]
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < common["iters"]:
        raise InputError(f"{section}.common.warmup", f"{common['warmup']!r} is not in [0, iters)",
                         f"use fewer warm-up iterations than the {common['iters']} iterations")  # fmt: skip
    common["amp"] = flag(common["amp"], f"{key}.amp")
    if methods.augment:
        common["augment"] = flag(common["augment"], f"{key}.augment") or method in methods.augmented
    common["pretrained"] = resolve_pretrained(common["pretrained"], f"{section}.common.pretrained")
    if method in methods.paired and common["batch"] % 2:
        raise InputError(f"{section}.common.batch", f"{method} needs an even batch, got {common['batch']}",
                         "half of a batch is source images, half synthetic: use e.g. 4")  # fmt: skip
    options = cfg.get(method) or {}
    if not isinstance(options, dict) or (options and method not in methods.with_options):
        fix = "give key: value pairs" if method in methods.with_options else f"{method} takes none: use {{}}"
        raise InputError(f"{section}.{method}", f"{options!r} is not a mapping of model arguments", fix)
    return TrainSettings(method=method, options=dict(options),
                         **{k: tuple(v) if isinstance(v, list) else v for k, v in common.items()})  # fmt: skip


def method_model(settings: TrainSettings, names: dict[str, str], registry, base: type, section: str,
                 conditions: list[str]) -> dict | None:  # fmt: skip
    """The method's model type (`names`: method -> registered class) and arguments, checked against the class's
    signature: every option must be an argument the task's plain model `base` does not take; DRSF's models get the
    number of pseudo-domains. None for a method without a class of its own (the task's plain model)."""
    if settings.method not in names:
        return None
    model_class = registry.get(names[settings.method])
    known = inspect.signature(model_class.__init__).parameters
    inherited = set(inspect.signature(base.__init__).parameters) | {"num_pseudo_domains"}
    takes = [k for k, p in known.items() if p.default is not p.empty and k not in inherited]
    unknown = sorted(k for k in settings.options if k not in takes)
    if unknown:
        raise InputError(f"params.yaml {section}.{settings.method}", f"unknown argument {unknown[0]!r}",
                         f"{settings.method} takes: {', '.join(takes)}")  # fmt: skip
    extra = dict(num_pseudo_domains=len(conditions)) if settings.method == "drsf" else {}
    return dict(type=names[settings.method], **extra, **settings.options)
