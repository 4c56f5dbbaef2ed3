"""The `generator` section of params.yaml, checked: how much to train at which size, and the caption conditions."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pipeline.domains import check_condition
from pipeline.errors import InputError, check_keys, flag, number, whole
from pipeline.sd import Sizes

# One attention head per block: at these widths, 8 heads of 4-8 channels make attention 5-10x slower on a CPU.
HEADS = 1


@dataclass(frozen=True)
class Size:
    """How much to train, at which size: `generator.sizes`."""

    images: int  # corpus images
    height: int
    width: int
    batch: int
    vae_steps: int
    unet_steps: int
    depth_steps: int  # fine-tuning steps of the depth UNet (SD 2 depth's architecture), after the text-to-image UNet
    lr: float
    unet: tuple[int, ...]  # UNet channels per level
    unet_attention: tuple[bool, ...]  # attention (text and self) per UNet level
    vae: tuple[int, ...]  # VAE channels per level; each level after the first halves the resolution
    vae_attention: bool  # self-attention in the VAE's middle block
    text_width: int
    text_layers: int
    train_text: bool  # train the text encoder with the UNet; false: it stays as initialised, as SD keeps CLIP's

    def architecture(self) -> Sizes:
        return Sizes(unet=self.unet, vae=self.vae, text_width=self.text_width, text_layers=self.text_layers,
                     attention_head_dim=HEADS, vae_attention=self.vae_attention,
                     unet_attention=self.unet_attention)  # fmt: skip

    @property
    def factor(self) -> int:
        """Image pixels per latent pixel, along each side."""
        return 2 ** (len(self.vae) - 1)


@dataclass(frozen=True)
class Words:
    """The parts of a caption taken from the `prompts` section."""

    quality: str
    locations: list[str]
    scenes: list[str]


@dataclass(frozen=True)
class Condition:
    """A caption condition word and the world condition (with parameter ranges) its images are rendered in."""

    word: str
    world: str
    params: dict[str, tuple[float, float]]


def load_size(cfg: dict) -> Size:
    """`generator.sizes`, checked for its keys and for sizes the model can work at."""
    where = "params.yaml generator.sizes"
    spec = cfg["sizes"]
    if not isinstance(spec, dict):
        raise InputError(where, f"{spec!r} is not a mapping", "see the README for its keys")
    check_keys(spec, [f.name for f in fields(Size)], where, "generator.sizes")
    for field in fields(Size):
        key = f"generator.sizes.{field.name}"
        if field.name == "lr":
            number(spec["lr"], key, positive=True)
        elif field.name in ("vae_attention", "train_text"):
            flag(spec[field.name], key)
        elif field.name == "unet_attention":
            value, levels = spec[field.name], len(spec["unet"])
            if not isinstance(value, list) or len(value) != levels or not all(isinstance(v, bool) for v in value):
                raise InputError(f"params.yaml {key}", f"{value!r} is not one true/false per UNet level",
                                 f"set {key} to a list of {levels} booleans, one per generator.sizes.unet level")  # fmt: skip
        elif field.name in ("unet", "vae"):
            if not isinstance(spec[field.name], list) or not spec[field.name]:
                raise InputError(f"params.yaml {key}", f"{spec[field.name]!r} is not a list of channel counts",
                                 f"set {key} to a list of channels per level, e.g. [16, 32]")  # fmt: skip
            for channels in spec[field.name]:
                whole(channels, key)
        else:
            whole(spec[field.name], key)
    size = Size(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    multiple = size.factor * 2 ** (len(size.unet) - 1)
    if size.height % multiple or size.width % multiple:
        raise InputError(where, f"{size.height}x{size.width} does not divide into the VAE's and the UNet's "
                         f"downsamplings", f"use a height and width that are multiples of {multiple}")  # fmt: skip
    return size


def load_conditions(cfg: dict) -> list[Condition]:
    """The caption conditions of `generator.conditions`, each checked against the world's conditions."""
    conditions = cfg["conditions"]
    if not isinstance(conditions, dict) or not conditions:
        raise InputError("params.yaml generator.conditions", "no caption conditions",
                         "map caption words to world conditions, e.g. fog/mist: {condition: fog}")  # fmt: skip
    loaded = []
    for word, spec in conditions.items():
        where = f"params.yaml generator.conditions.{word}"
        if not isinstance(spec, dict) or set(spec) - {"condition", "params"}:
            raise InputError(where, f"{spec!r} is not {{condition: ..., params: ...}}",
                             "give e.g. fog/mist: {condition: fog, params: {visibility: [60, 150]}}")  # fmt: skip
        params = check_condition(where, spec.get("condition"), spec.get("params"))
        loaded.append(Condition(word, spec["condition"], params))
    return loaded


def load_words(prompts: dict) -> Words:
    """The caption words of the `prompts` section: a quality string and non-empty lists of locations and scenes."""
    for key in ("locations", "scenes"):
        if not isinstance(prompts[key], list) or not prompts[key]:
            raise InputError(f"params.yaml prompts.{key}", "must be a non-empty list", 'use [""] for "no choice"')
    return Words(str(prompts["quality"]), [str(w) for w in prompts["locations"]], [str(w) for w in prompts["scenes"]])


def load_samples(cfg: dict) -> int:
    """`generator.samples`: images per caption condition on the sample sheets."""
    count = cfg["samples"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError("params.yaml generator.samples", f"{count!r} is not a positive integer", "set e.g. 6")
    return count
