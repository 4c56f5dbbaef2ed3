"""Conditions: turn a rendered scene's surfaces into a clear, foggy, rainy, snowy, night or dusk photograph.

A condition changes only appearance, never the layout or the labels. Each one is a function of the scene buffers,
a random generator, and its own parameters; `DEFAULTS` holds those parameters, and a caller may override them (a
corpus rendered with other fog densities than the evaluation targets, say). Fog follows Koschmieder's law with the
rendered depth; night lights the scene with the lamps, head- and tail-lights the scene carries.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from pipeline.labels import TRAIN_ID
from pipeline.world.raster import Buffers, noise_tiles, crop_tile

DEFAULTS: dict[str, dict] = {
    "clear": {},
    "fog": {"visibility": (25.0, 60.0), "airlight": (0.72, 0.86)},
    "rain": {"visibility": (120.0, 250.0), "streaks": (0.35, 0.6), "darkness": (0.5, 0.65)},
    "snow": {"visibility": (120.0, 300.0), "cover": (0.45, 0.8), "flakes": (0.5, 0.9)},
    "night": {"ambient": (0.03, 0.07), "lit_windows": (0.15, 0.45), "noise": (0.025, 0.05)},
    "dusk": {"ambient": (0.35, 0.5), "lit_windows": (0.05, 0.2), "noise": (0.0, 0.015)},
}
CONDITIONS = tuple(DEFAULTS)
GROUND = (TRAIN_ID["road"], TRAIN_ID["sidewalk"], TRAIN_ID["terrain"])
Range = tuple[float, float]


def apply_condition(buf: Buffers, condition: str, rng: np.random.Generator, **params) -> np.ndarray:
    """The photograph of `buf` under `condition`, as H x W x 3 uint8; `params` override `DEFAULTS[condition]`."""
    if condition not in DEFAULTS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    unknown = set(params) - set(DEFAULTS[condition])
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for condition {condition!r}")
    drawn = {k: float(rng.uniform(*v)) for k, v in {**DEFAULTS[condition], **params}.items()}
    image = _CONDITIONS[condition](buf, rng, **drawn)
    planar = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(planar.transpose(1, 2, 0))


def _rgb(color, scale: float = 1.0) -> np.ndarray:
    """A colour as a 3 x 1 x 1 array, to broadcast over planar 3 x H x W images."""
    return np.asarray(color, np.float32).reshape(3, 1, 1) * np.float32(scale)


def _sky(buf: Buffers, rng, top: Range, bottom: Range, clouds: float, cloud: Range) -> np.ndarray:
    """The sky's colours in the rows down to the lowest sky pixel (the rest of the image has none)."""
    is_sky = (buf.label == TRAIN_ID["sky"]).any(axis=1)
    height, width = int(np.nonzero(is_sky)[0].max()) + 1 if is_sky.any() else 0, buf.label.shape[1]
    t = np.clip((np.arange(height, dtype=np.float32) + 0.5) / max(buf.horizon, 1.0), 0, 1)[None, :, None]
    sky = _rgb(top) * (1 - t) + _rgb(bottom) * t
    if clouds <= 0:
        return np.broadcast_to(sky, (3, height, width))
    cover = np.clip(crop_tile(noise_tiles()[1], rng, height, width) * 2.0 - (1 - 2 * clouds), 0, 1)
    return sky * (1 - cover) + _rgb(cloud) * cover


def _compose(buf: Buffers, surface: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """`surface` with the sky painted into the sky pixels (in place)."""
    rows = sky.shape[1]
    np.copyto(surface[:, :rows], sky, where=buf.label[:rows] == TRAIN_ID["sky"])
    return surface


def _fog(image: np.ndarray, buf: Buffers, visibility: float, airlight) -> np.ndarray:
    """Koschmieder: I = J t + A (1 - t) with t = exp(-beta d) and beta = ln(20) / visibility."""
    t = np.exp(-np.log(20.0) / visibility * buf.depth)
    airlight = _rgb(airlight)
    return (image - airlight) * t + airlight


def _lights(buf: Buffers, ambient: np.ndarray, gain: float) -> np.ndarray:
    """Irradiance from the scene's point lights (computed at 1/8 resolution, the light is smooth), plus ambient."""
    height, width = buf.label.shape
    step = 8
    z = buf.depth[step // 2 :: step, step // 2 :: step]
    v = np.arange(step // 2, height, step, dtype=np.float32)[:, None] + 0.5
    u = np.arange(step // 2, width, step, dtype=np.float32)[None, :] + 0.5
    x, y = (u - width / 2) * z / buf.focal, buf.camera_height + (buf.horizon - v) * z / buf.focal
    light = np.zeros((3, *z.shape), np.float32)
    if len(buf.lights):
        lx, ly, lz = (buf.lights[:, i, None, None] for i in range(3))
        falloff = gain * buf.lights[:, 6, None, None] / (1.0 + (x - lx) ** 2 + (y - ly) ** 2 + (z - lz) ** 2)
        light = np.einsum("lhw,lc->chw", falloff, buf.lights[:, 3:6])
    return np.stack([cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR) for plane in light]) + ambient


def _glows(image: np.ndarray, buf: Buffers, strength: float) -> np.ndarray:
    """Bright cores and halos where a light source is in view."""
    height, width = buf.label.shape
    halo = np.zeros((height, width, 3), np.float32)
    for lx, ly, lz, r, g, b, power in buf.lights:
        u, v = width / 2 + buf.focal * lx / lz, buf.horizon + buf.focal * (buf.camera_height - ly) / lz
        iu, iv = int(u), int(v)
        if not (0 <= iu < width and 0 <= iv < height) or buf.depth[iv, iu] < lz - 0.5:
            continue
        radius = max(1, int(round(buf.focal * 0.06 * np.sqrt(power) / lz)))
        cv2.circle(halo, (iu, iv), radius, (float(r * strength), float(g * strength), float(b * strength)), -1, cv2.LINE_AA)
    if buf.lights.shape[0]:
        halo = cv2.GaussianBlur(halo, (0, 0), 3) + cv2.GaussianBlur(halo, (0, 0), 0.8)
    return image + halo.transpose(2, 0, 1)


def _windows(image: np.ndarray, buf: Buffers, lit_windows: float) -> np.ndarray:
    lit = (buf.windows > 0) & (buf.windows < lit_windows)
    return np.where(lit, _rgb((1.0, 0.78, 0.45), 0.75), image)


def _noise(image: np.ndarray, rng, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image
    height, width = image.shape[1:]
    grain = crop_tile(noise_tiles()[0], rng, height, width)
    return image + sigma * 1.7 * grain * (0.6 + 0.4 * np.sqrt(np.clip(image, 0, 1)))


@lru_cache(maxsize=2)
def _particles(kind: str, height: int = 512, width: int = 1024) -> np.ndarray:
    """A fixed layer of rain streaks or snow flakes, cropped at random offsets per image."""
    rng = np.random.default_rng(7 if kind == "rain" else 11)
    layer = np.zeros((height, width), np.float32)
    if kind == "rain":
        for x, y, length in zip(rng.uniform(0, width, 2500), rng.uniform(0, height, 2500), rng.uniform(6, 24, 2500)):
            end = (int(x + 0.18 * length), int(y + length))
            cv2.line(layer, (int(x), int(y)), end, float(rng.uniform(0.3, 1)), 1, cv2.LINE_AA)
        return cv2.GaussianBlur(layer, (0, 0), 0.6)
    for x, y, r in zip(rng.uniform(0, width, 1800), rng.uniform(0, height, 1800), rng.uniform(0.5, 2.5, 1800)):
        cv2.circle(layer, (int(x), int(y)), int(round(r)), float(rng.uniform(0.5, 1)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(layer, (0, 0), 0.8)


def _lit(buf: Buffers, strength: float = 0.45) -> np.ndarray:
    return buf.albedo * ((1 - strength) + strength * buf.shade)


def clear(buf: Buffers, rng) -> np.ndarray:
    sky = _sky(buf, rng, (0.25, 0.45, 0.80), (0.68, 0.78, 0.92), rng.uniform(0.0, 0.35), (0.95, 0.95, 0.97))
    return _compose(buf, _lit(buf) * 1.08, sky)


def fog(buf: Buffers, rng, visibility: float, airlight: float) -> np.ndarray:
    # The sky is at SKY_DEPTH, where the transmission is zero: it takes the airlight's colour.
    return _fog(_lit(buf, 0.1) * 0.95, buf, visibility, _rgb((0.97, 0.99, 1.0), airlight))


def rain(buf: Buffers, rng, visibility: float, streaks: float, darkness: float) -> np.ndarray:
    surface = _lit(buf, 0.1) * darkness
    gray = surface.mean(axis=0)
    surface = 0.6 * surface + 0.4 * gray  # overcast light washes colours out
    wet = np.isin(buf.label, GROUND[:2])
    surface = np.where(wet, surface * 0.7 + 0.06 * (1 + crop_tile(noise_tiles()[1], rng, *buf.label.shape)), surface)
    sky = _sky(buf, rng, (0.42, 0.44, 0.47), (0.58, 0.60, 0.62), 0.5, (0.35, 0.36, 0.38))
    image = _fog(_compose(buf, surface, sky), buf, visibility, (0.55, 0.57, 0.6))
    layer = crop_tile(_particles("rain"), rng, *buf.label.shape)
    return image + streaks * 0.5 * layer


def snow(buf: Buffers, rng, visibility: float, cover: float, flakes: float) -> np.ndarray:
    height, width = buf.label.shape
    coarse, fine = crop_tile(noise_tiles()[1], rng, height, width), crop_tile(noise_tiles()[0], rng, height, width)
    ground = np.isin(buf.label, GROUND)
    on_road = buf.label == TRAIN_ID["road"]
    amount = np.where(on_road, cover * 0.6, cover) + 0.25 * coarse + 0.08 * fine
    alpha = np.clip((amount - 0.35) * 3, 0, 1) * ground + 0.8 * (buf.label == TRAIN_ID["vegetation"]) * (fine > 1.3 - cover)
    surface = _lit(buf, 0.15) * 0.9
    surface += alpha * (_rgb((0.97, 0.98, 1.0), 0.9) - surface)
    sky = _sky(buf, rng, (0.70, 0.72, 0.76), (0.82, 0.83, 0.86), 0.0, (0, 0, 0))
    image = _fog(_compose(buf, surface, sky), buf, visibility, (0.82, 0.83, 0.86))
    return image + flakes * crop_tile(_particles("snow"), rng, height, width)


def night(buf: Buffers, rng, ambient: float, lit_windows: float, noise: float) -> np.ndarray:
    irradiance = _lights(buf, _rgb((0.75, 0.85, 1.2), ambient), gain=0.8)
    image = _windows(buf.albedo * irradiance, buf, lit_windows)
    sky = _sky(buf, rng, (0.0, 0.0, 0.02), (0.03, 0.04, 0.08), 0.0, (0, 0, 0))
    image = _glows(_compose(buf, image, sky), buf, 1.2)
    return _noise(image, rng, noise)


def dusk(buf: Buffers, rng, ambient: float, lit_windows: float, noise: float) -> np.ndarray:
    irradiance = _lights(buf, _rgb((1.15, 0.85, 0.7), ambient), gain=0.3)
    image = _windows(_lit(buf, 0.6) * irradiance, buf, lit_windows)
    sky = _sky(buf, rng, (0.22, 0.2, 0.42), (0.98, 0.58, 0.36), 0.3, (0.55, 0.35, 0.4))
    image = _glows(_compose(buf, image, sky), buf, 0.6)
    return _noise(image, rng, noise)


_CONDITIONS = {"clear": clear, "fog": fog, "rain": rain, "snow": snow, "night": night, "dusk": dusk}
