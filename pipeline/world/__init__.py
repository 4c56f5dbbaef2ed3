"""The embedded default data set: a procedural driving world rendered on the CPU, with labels, boxes and depth.

Image `index` of a domain is a pure function of (seed, city, condition, split, index): the layout is drawn from
(seed, city, split, index) alone, so the same index shows the same street, with the same labels, under every
condition; the weather's own randomness is drawn from all five.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pipeline.world.raster import render_scene
from pipeline.world.scene import CITIES, sample_scene
from pipeline.world.weather import CONDITIONS, apply_condition

__all__ = ["CITIES", "CONDITIONS", "WorldImage", "render"]


@dataclass
class WorldImage:
    image: np.ndarray  # H x W x 3 uint8 RGB
    label: np.ndarray  # H x W uint8 trainIds
    depth: np.ndarray  # H x W float32 metres
    boxes: list[dict]


def _rng(*parts: int | str) -> np.random.Generator:
    words = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(words))


def render(seed: int, city: str, condition: str, split: str, index: int, height: int = 256, width: int = 512,
           **condition_params) -> WorldImage:  # fmt: skip
    """Render image `index` of the (city, condition, split) domain."""
    if city not in CITIES:
        raise ValueError(f"unknown city {city!r}; known: {', '.join(CITIES)}")
    layout = _rng(seed, "layout", city, split, index)  # geometry and surface texture
    buf = render_scene(sample_scene(layout, CITIES[city]), height, width, layout)
    image = apply_condition(buf, condition, _rng(seed, "look", city, condition, split, index), **condition_params)
    return WorldImage(image=image, label=buf.label, depth=buf.depth, boxes=buf.boxes)
