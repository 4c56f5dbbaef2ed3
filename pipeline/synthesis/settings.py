"""The `synthesize` section of params.yaml, checked into one Settings record before any work is done."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.errors import InputError

KEYS = ("model", "revision", "mode", "height", "width", "steps", "guidance", "strength", "scheduler", "batch",
        "dtype", "compile", "shard_size", "sheet")  # fmt: skip
MODES = ("txt2img", "img2img", "depth2img")
SCHEDULERS = ("dpm++", "ddim", "euler", "pndm", "model")
DTYPES = ("auto", "fp32", "fp16", "bf16")
NOT_PIXELS = ("compile", "sheet")  # settings that do not change a generated image


@dataclass(frozen=True)
class Settings:
    model: str  # a local diffusers folder or a hub id
    revision: str | None
    mode: str
    height: int  # the size the model works at
    width: int
    steps: int
    guidance: float
    strength: float | None  # None for txt2img, which starts from noise
    scheduler: str
    batch: int
    dtype: str
    compile: bool
    shard_size: int
    sheet: dict

    @property
    def labeled(self) -> bool:
        """img2img and depth2img keep the source's layout, so its label and boxes hold for the output."""
        return self.mode != "txt2img"

    def pixel_settings(self) -> dict:
        """The settings that determine the pixels (the work-in-progress fingerprint hashes them)."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_PIXELS}


def _count(cfg: dict, key: str, minimum: int = 1, section: str = "synthesize") -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"params.yaml {section}.{key}", f"{value!r} is not a whole number >= {minimum}",
                         f"set {section}.{key} to a whole number >= {minimum}")  # fmt: skip
    return value


def _choice(cfg: dict, key: str, choices: tuple[str, ...]) -> str:
    if cfg[key] not in choices:
        raise InputError(f"params.yaml synthesize.{key}", f"unknown {key} {cfg[key]!r}", f"use one of: {', '.join(choices)}")
    return cfg[key]


def check(cfg: dict) -> Settings:
    """The checked settings of `cfg` (the `synthesize` section); an InputError names the first bad one."""
    missing = [k for k in KEYS if k not in cfg]
    if missing:
        raise InputError("params.yaml synthesize", f"no `{missing[0]}`", f"add synthesize.{missing[0]} (see the README)")
    if not isinstance(cfg["model"], str) or not cfg["model"]:
        raise InputError("params.yaml synthesize.model", f"{cfg['model']!r} is not a folder or hub id",
                         "set it to a local diffusers folder (models/generator) or a hub id")  # fmt: skip
    mode = _choice(cfg, "mode", MODES)
    for key in ("height", "width"):
        if _count(cfg, key) % 8:
            raise InputError(f"params.yaml synthesize.{key}", f"{cfg[key]} is not a multiple of 8",
                             f"use {cfg[key] // 8 * 8 or 8} or {cfg[key] // 8 * 8 + 8}: the VAE works in 8-pixel cells")  # fmt: skip
    steps = _count(cfg, "steps")
    strength = None
    if mode != "txt2img":
        strength = cfg["strength"]
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
            raise InputError("params.yaml synthesize.strength", f"{strength!r} is not in (0, 1]",
                             "set how much of the source is noised away, e.g. 0.6 (DIDEX: 0.9)")  # fmt: skip
        if int(steps * strength) < 1:
            raise InputError("params.yaml synthesize.strength", f"steps x strength = {steps} x {strength} leaves no "
                             "denoising step", "raise synthesize.steps or synthesize.strength")  # fmt: skip
    if isinstance(cfg["guidance"], bool) or not isinstance(cfg["guidance"], (int, float)):
        raise InputError("params.yaml synthesize.guidance", f"{cfg['guidance']!r} is not a number", "set e.g. 7.5")
    sheet = cfg["sheet"]
    if not isinstance(sheet, dict) or set(sheet) != {"images", "tile_height"}:
        raise InputError("params.yaml synthesize.sheet", f"{sheet!r} is not {{images, tile_height}}",
                         "set sheet: {images: 6, tile_height: 96}")  # fmt: skip
    _count(sheet, "images", minimum=0, section="synthesize.sheet")
    _count(sheet, "tile_height", section="synthesize.sheet")
    if not isinstance(cfg["compile"], bool):
        raise InputError("params.yaml synthesize.compile", f"{cfg['compile']!r} is not true or false",
                         "set compile: true to torch.compile the UNet, else false")  # fmt: skip
    if cfg["revision"] is not None and not isinstance(cfg["revision"], str):
        raise InputError("params.yaml synthesize.revision", f"{cfg['revision']!r} is not a branch, tag or commit",
                         "set a hub revision as a string, or null for main")  # fmt: skip
    return Settings(
        model=cfg["model"], revision=cfg["revision"], mode=mode, height=cfg["height"], width=cfg["width"],
        steps=steps, guidance=float(cfg["guidance"]), strength=None if strength is None else float(strength),
        scheduler=_choice(cfg, "scheduler", SCHEDULERS), batch=_count(cfg, "batch"), dtype=_choice(cfg, "dtype", DTYPES),
        compile=cfg["compile"], shard_size=_count(cfg, "shard_size"), sheet=dict(sheet),
    )  # fmt: skip
