"""Street-scene layouts: what a city looks like on average, and the geometry of one sampled scene (no pixels).

A scene is a straight street seen from a car: a road with sidewalks, facades or gaps (vegetation, walls, fences)
on both sides, an optional cross street, and objects standing on the ground (cars, trucks, buses, people, cyclists,
trees, lamps, signs, traffic lights). All lengths are metres; `x` is lateral (right positive), `z` forward.
The layout depends only on the city and the random generator, never on the weather or the time of day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class City:
    """Layout statistics and palette of one city; every range is (low, high) for a uniform draw."""

    name: str
    road_half: tuple[float, float]
    sidewalk: tuple[float, float]
    setback: tuple[float, float]  # lawn or yard between sidewalk and facade
    building_height: tuple[float, float]
    building_length: tuple[float, float]
    gap_prob: float  # chance that a stretch of street has no building
    trees_per_10m: float
    cars_per_10m: float
    people_per_10m: float
    cross_street_prob: float
    facades: tuple[tuple[float, float, float], ...]
    road: tuple[float, float, float]
    sidewalk_color: tuple[float, float, float]
    terrain: tuple[float, float, float]
    vegetation: tuple[float, float, float]


CITIES = {
    # A dense old town: narrow streets, tall pastel facades, many people and parked cars, few trees.
    "a": City(
        name="a", road_half=(3.2, 5.0), sidewalk=(2.0, 3.5), setback=(0.0, 0.3), building_height=(9.0, 24.0),
        building_length=(7.0, 16.0), gap_prob=0.08, trees_per_10m=0.25, cars_per_10m=0.9, people_per_10m=0.9,
        cross_street_prob=0.5,
        facades=((0.82, 0.70, 0.50), (0.88, 0.84, 0.72), (0.80, 0.55, 0.45), (0.70, 0.70, 0.68),
                 (0.75, 0.78, 0.62), (0.62, 0.52, 0.45)),
        road=(0.36, 0.36, 0.38), sidewalk_color=(0.66, 0.60, 0.55), terrain=(0.45, 0.52, 0.30),
        vegetation=(0.22, 0.38, 0.14),
    ),
    # A wide suburb: broad roads, low brick and siding houses behind lawns, many trees, few people.
    "b": City(
        name="b", road_half=(5.0, 7.5), sidewalk=(1.4, 2.2), setback=(4.0, 10.0), building_height=(4.0, 9.0),
        building_length=(9.0, 20.0), gap_prob=0.35, trees_per_10m=1.1, cars_per_10m=0.45, people_per_10m=0.25,
        cross_street_prob=0.3,
        facades=((0.55, 0.25, 0.20), (0.90, 0.90, 0.88), (0.48, 0.55, 0.62), (0.72, 0.62, 0.46),
                 (0.40, 0.30, 0.25)),
        road=(0.24, 0.24, 0.25), sidewalk_color=(0.70, 0.70, 0.68), terrain=(0.35, 0.55, 0.22),
        vegetation=(0.15, 0.33, 0.12),
    ),
    # A mid-size town: medium streets, mid-rise concrete, mustard, teal and mauve facades, small front yards,
    # some trees. No evaluation domain uses it: the generator's corpus is rendered here.
    "c": City(
        name="c", road_half=(4.0, 6.0), sidewalk=(1.8, 3.0), setback=(0.3, 2.5), building_height=(7.0, 15.0),
        building_length=(8.0, 18.0), gap_prob=0.18, trees_per_10m=0.6, cars_per_10m=0.7, people_per_10m=0.5,
        cross_street_prob=0.4,
        facades=((0.78, 0.79, 0.80), (0.86, 0.74, 0.40), (0.55, 0.70, 0.68), (0.70, 0.52, 0.60),
                 (0.50, 0.55, 0.66), (0.92, 0.86, 0.80)),
        road=(0.30, 0.31, 0.34), sidewalk_color=(0.58, 0.57, 0.60), terrain=(0.40, 0.50, 0.27),
        vegetation=(0.18, 0.36, 0.16),
    ),
}

CAR_COLORS = np.array([(0.85, 0.85, 0.85), (0.08, 0.08, 0.09), (0.55, 0.06, 0.05), (0.10, 0.18, 0.45),
                       (0.45, 0.47, 0.50), (0.75, 0.72, 0.60), (0.15, 0.32, 0.20), (0.85, 0.60, 0.10)])  # fmt: skip
CLOTHES = np.array([(0.10, 0.10, 0.12), (0.55, 0.10, 0.12), (0.15, 0.25, 0.50), (0.85, 0.85, 0.80),
                    (0.35, 0.30, 0.22), (0.20, 0.45, 0.30), (0.75, 0.55, 0.15)])  # fmt: skip

# Object kinds: size (width, height) in metres, the half-range of random size jitter.
SIZES = {
    "car": ((1.8, 1.5), 0.1), "truck": ((2.5, 3.4), 0.1), "bus": ((2.6, 3.2), 0.05),
    "person": ((0.6, 1.75), 0.1), "cyclist": ((0.7, 1.8), 0.05), "tree": ((3.5, 7.0), 0.35),
    "lamp": ((1.6, 7.0), 0.1), "sign": ((0.8, 2.8), 0.1), "light": ((0.5, 4.2), 0.05),
}  # fmt: skip


@dataclass
class Segment:
    """A stretch of one side of the street, from z0 to z1: a building or a gap filled with something."""

    z0: float
    z1: float
    kind: str  # building | vegetation | wall | fence | open
    height: float
    color: np.ndarray
    floor: float = 3.2  # storey height; windows repeat with it
    bay: float = 2.5  # window spacing along the street


@dataclass
class Thing:
    """An object standing on the ground at (x, z), drawn as a camera-facing billboard."""

    kind: str
    x: float
    z: float
    width: float
    height: float
    color: np.ndarray
    variant: int = 0  # sign shape, lit traffic lamp, facing (0 = away from camera, 1 = towards)


@dataclass
class Scene:
    city: City
    horizon: float  # row of the horizon as a fraction of the image height
    focal: float  # focal length as a fraction of the image width
    camera_height: float
    camera_x: float  # lateral offset of the camera from the road centre
    road_half: float
    sidewalk: float
    facade_x: tuple[float, float]  # lateral position of the left and right facade planes
    cross_street: tuple[float, float] | None
    sides: tuple[list[Segment], list[Segment]]
    things: list[Thing] = field(default_factory=list)
    sun_side: int = 1  # which facade side faces the sun


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _side(rng: np.random.Generator, city: City, cross: tuple[float, float] | None, far: float) -> list[Segment]:
    segments, z = [], 0.0
    while z < far:
        length = _uniform(rng, city.building_length)
        if cross is not None and z < cross[1] and z + length > cross[0]:
            segments.append(Segment(cross[0], cross[1], "open", 0.0, np.zeros(3)))
            z = cross[1]
            continue
        if rng.random() < city.gap_prob:
            kind = str(rng.choice(["vegetation", "wall", "fence", "open"], p=[0.45, 0.2, 0.2, 0.15]))
            height = {"vegetation": rng.uniform(3, 8), "wall": rng.uniform(1.0, 2.2), "fence": rng.uniform(1.2, 2.0),
                      "open": 0.0}[kind]  # fmt: skip
            color = np.array(city.vegetation) if kind == "vegetation" else rng.uniform(0.35, 0.7) * np.ones(3)
            segments.append(Segment(z, z + length, kind, float(height), color))
        else:
            base = np.array(city.facades[rng.integers(len(city.facades))])
            color = np.clip(base * rng.uniform(0.85, 1.12, 3), 0, 1)
            floor = rng.uniform(2.9, 3.6)
            segments.append(Segment(z, z + length, "building", _uniform(rng, city.building_height), color, floor,
                                    rng.uniform(2.0, 3.2)))  # fmt: skip
        z += length
    return segments


def _thing(rng: np.random.Generator, kind: str, x: float, z: float, color=None, variant: int = 0) -> Thing:
    (w, h), jitter = SIZES[kind]
    scale = 1 + rng.uniform(-jitter, jitter)
    if color is None:
        color = CAR_COLORS[rng.integers(len(CAR_COLORS))] if kind in ("car", "truck", "bus") else np.ones(3)
    return Thing(kind, x, z, w * scale, h * scale, np.asarray(color, dtype=np.float32), variant)


def _count(rng: np.random.Generator, per_10m: float, length: float) -> int:
    return int(rng.poisson(per_10m * length / 10))


def sample_scene(rng: np.random.Generator, city: City, far: float = 220.0) -> Scene:
    """Draw one street scene of `city`."""
    road_half, sidewalk = _uniform(rng, city.road_half), _uniform(rng, city.sidewalk)
    camera_x = -road_half / 2 + rng.uniform(-0.4, 0.4)  # driving in the right lane
    cross = None
    if rng.random() < city.cross_street_prob:
        start = rng.uniform(15, 60)
        cross = (start, start + rng.uniform(2 * city.road_half[0], 2 * city.road_half[1]) + 2 * sidewalk)
    edge = road_half + sidewalk
    facade = (-(edge + _uniform(rng, city.setback)) - camera_x, edge + _uniform(rng, city.setback) - camera_x)
    scene = Scene(
        city=city, horizon=rng.uniform(0.40, 0.48), focal=rng.uniform(0.55, 0.7), camera_height=rng.uniform(1.3, 1.7),
        camera_x=camera_x, road_half=road_half, sidewalk=sidewalk, facade_x=facade, cross_street=cross,
        sides=(_side(rng, city, cross, far), _side(rng, city, cross, far)), sun_side=int(rng.choice([-1, 1])),
    )  # fmt: skip
    on_street = lambda z: cross is None or not (cross[0] - 3 < z < cross[1] + 3)  # noqa: E731
    things = scene.things
    road_x = lambda lateral: lateral - camera_x  # noqa: E731  (road coordinates to camera coordinates)

    # Traffic in both directions and parked cars along both curbs.
    for lane, facing in ((road_half / 2, 0), (-road_half / 2, 1)):
        for _ in range(_count(rng, city.cars_per_10m * 0.6, 120)):
            kind = str(rng.choice(["car", "truck", "bus"], p=[0.84, 0.1, 0.06]))
            things.append(_thing(rng, kind, road_x(lane + rng.uniform(-0.4, 0.4)), rng.uniform(5, 120), None, facing))
    for side in (-1, 1):
        for _ in range(_count(rng, city.cars_per_10m, 80)):
            z = rng.uniform(4, 80)
            if on_street(z):
                things.append(_thing(rng, "car", road_x(side * (road_half - 1.1)), z, None, int(rng.integers(2))))
    # People on the sidewalks and crossing; cyclists near the curb.
    for side in (-1, 1):
        for _ in range(_count(rng, city.people_per_10m, 60)):
            x = side * (road_half + rng.uniform(0.3, sidewalk - 0.3))
            colors = CLOTHES[rng.integers(len(CLOTHES), size=2)]
            things.append(_thing(rng, "person", road_x(x), rng.uniform(4, 60), colors[0], int(rng.integers(4))))
    for _ in range(rng.poisson(0.6)):
        x = rng.uniform(-road_half, road_half)
        things.append(_thing(rng, "person", road_x(x), rng.uniform(6, 40), CLOTHES[rng.integers(len(CLOTHES))]))
    for _ in range(rng.poisson(0.5)):
        color = CLOTHES[rng.integers(len(CLOTHES))]
        things.append(_thing(rng, "cyclist", road_x(road_half - 0.8), rng.uniform(6, 50), color))
    # Street furniture and trees at the sidewalk's outer edge.
    for side in (-1, 1):
        x_edge = side * (road_half + 0.4)
        z = rng.uniform(3, 20)
        while z < 140:
            if on_street(z):
                things.append(_thing(rng, "lamp", road_x(x_edge), z, None, side))
            z += rng.uniform(18, 35)
        for _ in range(_count(rng, city.trees_per_10m, 120)):
            z = rng.uniform(4, 120)
            x = side * (road_half + sidewalk - 0.6 + (rng.uniform(1, 3) if city.setback[1] > 2 else 0))
            if on_street(z):
                green = np.clip(np.array(city.vegetation) * rng.uniform(0.75, 1.3, 3), 0, 1)
                things.append(_thing(rng, "tree", road_x(x), z, green))
        for _ in range(rng.poisson(1.5)):
            z = rng.uniform(5, 70)
            things.append(_thing(rng, "sign", road_x(x_edge), z, None, int(rng.integers(3))))
    if cross is not None:
        for side in (-1, 1):
            lamp = int(rng.integers(3))
            things.append(_thing(rng, "light", road_x(side * (road_half + 0.5)), cross[0] - 1.0, None, lamp))
    return scene
