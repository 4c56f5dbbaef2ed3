"""Rasterize a scene: per-pixel surface colour, trainId label, depth, instance id, sun shading, windows and lights.

Ground and facades are planes intersected per pixel row and column; objects are camera-facing billboards whose
parts are masks in metric local coordinates. A z-buffer resolves occlusion, so labels, depth and boxes agree with
what is drawn. The output is condition-free: `pipeline.world.weather` turns it into a day, fog or night image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.labels import TRAIN_ID
from pipeline.world.blur import blur_rows
from pipeline.world.scene import Scene, Thing

SKY_DEPTH = 1000.0
DETECTION_KINDS = {"car", "truck", "bus", "person", "cyclist"}  # things that get boxes (a cyclist: rider and bicycle)
BOX_CLASSES = ("car", "truck", "bus", "person", "rider", "bicycle")  # the classes of their boxes
GLASS, TYRE, SKIN, TRUNK = (0.10, 0.12, 0.15), (0.04, 0.04, 0.04), (0.80, 0.62, 0.50), (0.30, 0.22, 0.15)
LIGHT_COLORS = ((1.0, 0.1, 0.05), (1.0, 0.7, 0.05), (0.1, 1.0, 0.4))  # red, amber, green traffic lamps
C = TRAIN_ID


@dataclass
class Buffers:
    albedo: np.ndarray  # 3 x H x W float32 surface colour under neutral light (planar: fast broadcasts)
    label: np.ndarray  # H x W uint8 trainIds
    depth: np.ndarray  # H x W float32 forward distance in metres; SKY_DEPTH for the sky
    instance: np.ndarray  # H x W int32; thing k has id k + 1, 0 is stuff
    shade: np.ndarray  # H x W float32 direct-sun factor of the surface (1 lit, < 1 facing away)
    windows: np.ndarray  # H x W float32: 0 off glass, else a per-window draw in (0, 1] that decides if it is lit
    lights: np.ndarray  # N x 7 float32: x, y (up), z, r, g, b, power of each lamp, head- and tail-light
    boxes: list[dict]
    focal: float  # pixels
    horizon: float  # pixels
    camera_height: float


@lru_cache(maxsize=4)
def noise_tiles(height: int = 512, width: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Fixed fine and coarse noise in [-1, 1], made once per process and cropped at random offsets per image."""
    rng = np.random.default_rng(20240229)
    fine = rng.uniform(-1, 1, (height, width)).astype(np.float32)
    coarse = rng.uniform(-1, 1, (height // 16 + 2, width // 16 + 2)).astype(np.float32)
    coarse = np.kron(coarse, np.ones((16, 16), np.float32))
    kernel = np.hanning(33).astype(np.float32)
    kernel /= kernel.sum()
    coarse = blur_rows(blur_rows(coarse.T, kernel).T, kernel)[:height, :width]  # down the columns, then the rows
    return fine, coarse / np.abs(coarse).max()


def crop_tile(tile: np.ndarray, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random h x w window of a fixed tile (tiled larger first when the tile is too small)."""
    if h > tile.shape[0] or w > tile.shape[1]:
        tile = np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[1] + 1))
    y, x = rng.integers(tile.shape[0] - h + 1), rng.integers(tile.shape[1] - w + 1)
    return tile[y : y + h, x : x + w]


def render_scene(scene: Scene, height: int, width: int, rng: np.random.Generator) -> Buffers:
    """Draw `scene` at height x width pixels."""
    f, yh, hc = scene.focal * width, scene.horizon * height, scene.camera_height
    cx = width / 2
    buf = Buffers(
        albedo=np.zeros((3, height, width), np.float32), label=np.full((height, width), C["sky"], np.uint8),
        depth=np.full((height, width), SKY_DEPTH, np.float32), instance=np.zeros((height, width), np.int32),
        shade=np.ones((height, width), np.float32), windows=np.zeros((height, width), np.float32),
        lights=np.zeros((0, 7), np.float32), boxes=[], focal=f, horizon=yh, camera_height=hc,
    )  # fmt: skip
    fine, coarse = noise_tiles()
    fine, coarse = crop_tile(fine, rng, height, width), crop_tile(coarse, rng, height, width)
    _ground(scene, buf, f, yh, hc, cx)
    for side in (0, 1):
        _facades(scene, buf, side, f, yh, hc, cx, coarse)
    lights = []
    for k, thing in enumerate(scene.things):
        lights += _billboard(buf, thing, k + 1, f, yh, hc, cx, fine)
    if lights:
        buf.lights = np.array(lights, np.float32)
    things = buf.instance > 0
    buf.shade[things], buf.windows[things] = 1.0, 0.0
    buf.albedo *= 1 + 0.10 * fine + 0.12 * coarse
    np.clip(buf.albedo, 0, 1, out=buf.albedo)
    buf.boxes = _boxes(scene, buf)
    return buf


def _ground(scene: Scene, buf: Buffers, f: float, yh: float, hc: float, cx: float) -> None:
    height, width = buf.label.shape
    top = int(np.floor(yh)) + 1
    v = np.arange(top, height, dtype=np.float32)[:, None] + 0.5
    u = np.arange(width, dtype=np.float32)[None, :] + 0.5
    z = np.minimum(f * hc / (v - yh), SKY_DEPTH - 1)
    lateral = np.abs((u - cx) * z / f + scene.camera_x)  # distance from the road centre line
    sidewalk_edge = scene.road_half + scene.sidewalk
    index = (lateral >= scene.road_half).astype(np.uint8) + (lateral >= sidewalk_edge)  # road, sidewalk, terrain
    if scene.cross_street is not None:
        z0, z1 = scene.cross_street
        index = np.where((z > z0 + scene.sidewalk) & (z < z1 - scene.sidewalk), 0, index)  # the cross street's road
        index = np.where((z > z0) & (z < z1) & (index == 2), 1, index)  # and its corners
    paint = (lateral < 0.08) & (_frac(z, 9.0) < 4.5)
    paint |= np.abs(lateral - (scene.road_half - 0.25)) < 0.07
    if scene.cross_street is not None:
        zebra = (z > scene.cross_street[0] - 4) & (z < scene.cross_street[0] - 0.5) & (_frac(lateral, 1.0) < 0.5)
        paint |= zebra & (lateral < scene.road_half)
        paint &= ~((z > scene.cross_street[0]) & (z < scene.cross_street[1]))
    paint &= index == 0
    curb = (np.abs(lateral - scene.road_half) < 0.15) & (index == 1)
    palette = np.array([scene.city.road, scene.city.sidewalk_color, scene.city.terrain], np.float32)
    for channel in range(3):
        plane = np.where(paint, np.float32(PAINT[channel]), palette[:, channel][index])
        plane[curb] *= 0.75
        buf.albedo[channel, top:] = plane
    buf.label[top:] = GROUND_CLASS[index]
    buf.depth[top:] = z


GROUND_CLASS = np.array([C["road"], C["sidewalk"], C["terrain"]], np.uint8)
PAINT = (0.85, 0.85, 0.82)
FACADE_KINDS = ("building", "vegetation", "wall", "fence", "open")
BUILDING, VEGETATION, WALL, FENCE, OPEN = range(len(FACADE_KINDS))
FACADE_CLASS = np.array([C["building"], C["vegetation"], C["wall"], C["fence"], C["sky"]], np.uint8)


def _frac(x: np.ndarray, period) -> np.ndarray:
    return x - np.floor(x / period) * period


def _facades(scene: Scene, buf: Buffers, side: int, f: float, yh: float, hc: float, cx: float, coarse) -> None:
    height, width = buf.label.shape
    segments = scene.sides[side]
    # The facade plane x = X is seen in the columns on its side of the centre, at depth z = f X / (u - cx).
    u = np.arange(width, dtype=np.float32) + 0.5
    z = f * scene.facade_x[side] / np.where(np.abs(u - cx) < 0.5, np.nan, u - cx)
    cols = np.nonzero((z > 0.5) & (z < segments[-1].z1))[0]
    if len(cols) == 0:
        return
    c0, c1 = int(cols[0]), int(cols[-1]) + 1  # contiguous: z grows monotonically towards the centre
    z = z[c0:c1]
    # Per column: which segment, and its properties.
    seg = np.clip(np.searchsorted([s.z0 for s in segments], z, side="right") - 1, 0, len(segments) - 1)
    kind = np.array([FACADE_KINDS.index(s.kind) for s in segments])[seg]
    seg_height, floor, bay = (np.array([getattr(s, k) for s in segments], np.float32)[seg]
                              for k in ("height", "floor", "bay"))  # fmt: skip
    color = np.stack([s.color for s in segments]).astype(np.float32)[seg]
    building = kind == BUILDING
    top = seg_height + np.where(kind == VEGETATION, 1.2 * coarse[0, c0:c1], 0.0)
    bay_index = np.floor(z / bay)
    along, shop_along = z - bay_index * bay, _frac(z, 2 * bay)
    window_cols = building & (along > 0.6) & (along < bay - 0.6)
    shop_cols = building & (shop_along > 0.5) & (shop_along < 2 * bay - 1.2)
    # Per pixel: the height above the ground of its point on the facade plane.
    v = np.arange(height, dtype=np.float32)[:, None] + 0.5
    above = hc + (yh - v) * (z / f)
    depth, label = buf.depth[:, c0:c1], buf.label[:, c0:c1]
    mask = (above >= 0) & (above < top) & (z < depth) & (kind != OPEN)
    storey_index = np.floor(above / floor)
    storey = above - storey_index * floor
    window = window_cols & (above > floor) & (above < seg_height - 1.0) & (storey > 0.9) & (storey < 2.3)
    glass = (window | (shop_cols & (above > 0.3) & (above < 2.6))) & mask
    cornice = np.where(building & (above > seg_height - 0.45), np.float32(0.7), np.float32(1.0))
    fence = kind == FENCE
    has_fence = bool(fence.any())
    if has_fence:  # the terrain shows through the fence's mesh
        gaps = fence & (_frac(z * 4, 1.0) > 0.35) & (above < seg_height - 0.15) & (above > 0.1)
    for channel in range(3):
        albedo = np.where(glass, np.float32(GLASS[channel]), color[:, channel]) * cornice
        if has_fence:
            albedo = np.where(gaps, np.float32(scene.city.terrain[channel]), albedo)
        np.copyto(buf.albedo[channel, :, c0:c1], albedo, where=mask)
    # A per-window number decides, per condition, whether that window is lit at night.
    windows = np.zeros(mask.shape, np.float32)
    rows, cols = np.nonzero(glass)
    cell = storey_index[rows, cols] * 7919.0 + (bay_index * 104729.0 + seg * 1299709.0 + side * 15485863.0)[cols]
    windows[rows, cols] = _frac(np.sin(cell) * 43758.5453, 1.0) + 1e-3
    np.copyto(label, FACADE_CLASS[kind], where=mask)
    np.copyto(depth, z, where=mask)
    np.copyto(buf.windows[:, c0:c1], windows, where=mask)
    np.copyto(buf.shade[:, c0:c1], np.float32(1.0 if (side * 2 - 1) == scene.sun_side else 0.55), where=mask)


def _parts(thing: Thing, ax: np.ndarray, by: np.ndarray, noise: np.ndarray) -> list[tuple[np.ndarray, int, tuple]]:
    """The masks of a thing's parts, each with its trainId and colour, in metres from its top centre."""
    w, h, k = thing.width, thing.height, thing.kind
    color = tuple(thing.color)
    a = np.abs(ax)
    if k == "car":
        cabin = (by <= 0.42 * h) & (by > 0.03 * h) & (a < w / 2 * (0.72 + 0.22 * by / (0.42 * h)))
        body = (by > 0.42 * h) & (by < 0.86 * h) & (a < w / 2)
        glass = cabin & (by > 0.09 * h) & (by < 0.38 * h) & (a < w / 2 * (0.6 + 0.22 * by / (0.42 * h)))
        wheels = (by >= 0.78 * h) & (a > 0.26 * w) & (a < 0.46 * w)
        lamps = body & (by > 0.5 * h) & (by < 0.6 * h) & (a > 0.36 * w)
        lamp = (0.9, 0.9, 0.8) if thing.variant else (0.75, 0.05, 0.05)
        return [(cabin | body, C["car"], color), (glass, C["car"], GLASS), (wheels, C["car"], TYRE),
                (lamps, C["car"], lamp)]  # fmt: skip
    if k in ("truck", "bus"):
        box = (by < 0.86 * h) & (a < w / 2)
        wheels = (by >= 0.8 * h) & (a > 0.22 * w) & (a < 0.46 * w)
        band = (0.12 * h, 0.45 * h) if k == "bus" else (0.05 * h, 0.3 * h * thing.variant)
        glass = box & (by > band[0]) & (by < band[1]) & (a < 0.45 * w)
        return [(box, C[k], color), (glass, C[k], GLASS), (wheels, C[k], TYRE)]
    if k in ("person", "cyclist"):
        s = h / 1.75
        legs_to = h if k == "person" else 1.2 * s
        step = 0.03 * (thing.variant - 1.5) * s
        head = ax**2 + (by - 0.11 * s) ** 2 < (0.11 * s) ** 2
        torso = (a < 0.2 * s) & (by > 0.2 * s) & (by < 0.95 * s)
        arms = (a < 0.27 * s) & (by > 0.25 * s) & (by < 0.85 * s)
        legs = (by >= 0.95 * s) & (by < legs_to) & (np.abs(a - 0.09 * s + step * np.sign(ax)) < 0.075 * s)
        cls = C["person"] if k == "person" else C["rider"]
        parts = [(torso | arms, cls, color), (head, cls, SKIN), (legs, cls, (0.12, 0.12, 0.16))]
        if k == "cyclist":
            wheel = (a < 0.04 * s) & (by > h - 0.7 * s)
            bars = (a < 0.3 * s) & (by > 0.85 * s) & (by < 0.9 * s)
            frame = (a < 0.05 * s) & (by > 0.9 * s) & (by < h - 0.7 * s)
            parts.append((wheel | bars | frame, C["bicycle"], (0.15, 0.15, 0.15)))
        return parts
    if k == "tree":
        trunk = (a < 0.035 * w) & (by > 0.45 * h)
        canopy = (ax / (0.5 * w)) ** 2 + ((by - 0.32 * h) / (0.32 * h)) ** 2 < 1 + 0.45 * noise
        return [(trunk, C["vegetation"], TRUNK), (canopy, C["vegetation"], color)]
    if k == "lamp":
        post = -thing.variant * (w / 2 - 0.1)  # the post stands away from the road, the arm reaches over it
        pole = (np.abs(ax - post) < 0.07) | ((by < 0.12) & (ax * np.sign(-post) < w / 2))
        head = (by > 0.08) & (by < 0.22) & (np.abs(ax + 0.8 * post) < 0.25)
        return [(pole, C["pole"], (0.35, 0.35, 0.37)), (head, C["pole"], (0.9, 0.9, 0.8))]
    if k == "sign":
        post = (a < 0.04) & (by > 0.6)
        shape = [ax**2 + (by - 0.35) ** 2 < 0.35**2, (by > 0.05) & (by < 0.65) & (a < (by - 0.05) * 0.6),
                 (a < 0.38) & (by > 0.05) & (by < 0.6)][thing.variant]  # fmt: skip
        plate_color = [(0.8, 0.1, 0.1), (0.95, 0.95, 0.9), (0.1, 0.25, 0.7)][thing.variant]
        return [(post, C["pole"], (0.5, 0.5, 0.5)), (shape, C["traffic sign"], plate_color)]
    if k == "light":
        post = (a < 0.05) & (by > 0.9)
        box = (a < 0.17) & (by < 0.95)
        lit = (ax**2 + (by - (0.17 + 0.3 * thing.variant)) ** 2) < 0.1**2
        return [(post, C["pole"], (0.3, 0.3, 0.3)), (box, C["traffic light"], (0.08, 0.08, 0.08)),
                (lit, C["traffic light"], LIGHT_COLORS[thing.variant])]  # fmt: skip
    raise ValueError(f"unknown thing kind {k!r}")



def _light_sources(thing: Thing) -> list[list[float]]:
    """World positions, colours and powers of the light sources a thing carries."""
    x, z, w, h = thing.x, thing.z, thing.width, thing.height
    if thing.kind in ("car", "truck", "bus"):
        rgb, power = ((1.0, 0.95, 0.8), 2.0) if thing.variant else ((1.0, 0.08, 0.05), 0.5)
        return [[x + s * 0.4 * w, 0.45 * h, z, *rgb, power] for s in (-1, 1)]
    if thing.kind == "lamp":
        return [[x + 0.8 * thing.variant * (w / 2 - 0.1), h - 0.15, z, 1.0, 0.85, 0.6, 6.0]]
    if thing.kind == "light":
        return [[x, h - 0.17 - 0.3 * thing.variant, z, *LIGHT_COLORS[thing.variant], 0.8]]
    return []


def _billboard(buf: Buffers, thing: Thing, ident: int, f, yh, hc, cx, noise) -> list[list[float]]:
    if thing.z < 2.0:
        return []
    height, width = buf.label.shape
    scale = f / thing.z
    u0, u1 = cx + scale * (thing.x - thing.width / 2), cx + scale * (thing.x + thing.width / 2)
    v1 = yh + scale * hc
    v0 = v1 - scale * thing.height
    c0, c1 = max(int(np.floor(u0)), 0), min(int(np.ceil(u1)), width)
    r0, r1 = max(int(np.floor(v0)), 0), min(int(np.ceil(v1)), height)
    if c1 - c0 < 1 or r1 - r0 < 3:
        return []
    ax = ((np.arange(c0, c1, dtype=np.float32) + 0.5) - (u0 + u1) / 2)[None, :] / scale
    by = ((np.arange(r0, r1, dtype=np.float32) + 0.5) - v0)[:, None] / scale
    inside = (by >= 0) & (by < thing.height) & (np.abs(ax) < thing.width / 2)
    depth = buf.depth[r0:r1, c0:c1]
    visible = thing.z < depth
    if not visible.any():
        return _light_sources(thing)
    visible &= inside
    label, albedo, instance = buf.label[r0:r1, c0:c1], buf.albedo[:, r0:r1, c0:c1], buf.instance[r0:r1, c0:c1]
    parts = _parts(thing, ax, by, noise[r0:r1, c0:c1])
    if r1 - r0 < 8:  # far away: one flat part per class is enough
        merged: dict[int, tuple] = {}
        for mask, cls, color in parts:
            merged[cls] = (merged[cls][0] | mask, cls, merged[cls][2]) if cls in merged else (mask, cls, color)
        parts = list(merged.values())
    for mask, cls, color in parts:
        mask &= visible
        label[mask], depth[mask], instance[mask] = cls, thing.z, ident
        albedo[:, mask] = np.asarray(color, np.float32)[:, None]
    return _light_sources(thing)


def _boxes(scene: Scene, buf: Buffers) -> list[dict]:
    """Tight boxes around the visible pixels of each detection-class instance (at least 16 pixels)."""
    ys, xs = np.nonzero(buf.instance)
    if len(ys) == 0:
        return []
    key = buf.instance[ys, xs].astype(np.int64) * 256 + buf.label[ys, xs]
    order = np.argsort(key, kind="stable")
    key, ys, xs = key[order], ys[order], xs[order]
    starts = np.r_[0, np.nonzero(np.diff(key))[0] + 1]
    counts = np.diff(np.r_[starts, len(key)])
    x1, x2 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    y1, y2 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    names = {C[n]: n for n in BOX_CLASSES}
    boxes = []
    for i, start in enumerate(starts):
        ident, cls = divmod(int(key[start]), 256)
        if cls in names and scene.things[ident - 1].kind in DETECTION_KINDS and counts[i] >= 16:
            boxes.append({"label": names[cls], "x1": float(x1[i]), "y1": float(y1[i]), "x2": float(x2[i] + 1),
                          "y2": float(y2[i] + 1)})  # fmt: skip
    return boxes
