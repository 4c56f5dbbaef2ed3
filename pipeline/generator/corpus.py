"""The captioned corpus the generator learns from, rendered in memory: city c under the caption conditions.

Image i shows street i of city c (split `corpus`) in the world condition of caption condition i mod n, with that
condition's parameter ranges, so the conditions are balanced. Its caption follows the prompts stage's grammar,
`compose(quality, location, scene, None, classes present, condition word)`, with the location and the scene drawn
by a generator seeded with (seed, i): uninformative words that the synthesis prompts also carry. Each image keeps
its depth as the depth model is fed it at synthesis: the manifests' centimetres, as inverse metres at the image's
size. `held_out` renders other streets of city c (split `held-out`), for samples of layouts the model never saw.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
from tqdm import tqdm

from pipeline import world
from pipeline.generator.settings import Condition, Words
from pipeline.manifest import depth_centimetres
from pipeline.prompts import class_names, compose, row_seed
from pipeline.synthesis.depth import inverse_metres

CITY, SPLIT, HELD_OUT = "c", "corpus", "held-out"
SUPERSAMPLE = 2  # render at twice the size and downscale with area averaging: anti-aliased edges


@dataclass
class Corpus:
    images: np.ndarray  # N x H x W x 3 uint8 RGB
    depth: np.ndarray  # N x H x W float32 inverse metres
    captions: list[str]
    conditions: list[str]  # the caption condition word of each image


def caption(seed: int, index: int, words: Words, classes: list[str], condition: str) -> str:
    """The caption of corpus image `index`: its location and scene are drawn from (seed, index)."""
    rng = np.random.default_rng(row_seed(seed, f"{SPLIT}-{index:06d}"))
    location, scene = str(rng.choice(words.locations)), str(rng.choice(words.scenes))
    return compose(words.quality, location, scene, None, classes, condition)


def render_street(seed: int, split: str, index: int, height: int, width: int, condition: Condition):
    """Street `index` of city c's `split` in `condition`: the image at height x width, its inverse depth, the shot."""
    shot = world.render(seed, CITY, condition.world, split, index, height * SUPERSAMPLE, width * SUPERSAMPLE,
                        **condition.params)  # fmt: skip
    image = cv2.resize(shot.image, (width, height), interpolation=cv2.INTER_AREA)
    return image, inverse_metres(depth_centimetres(shot.depth), height, width), shot


def render_item(index: int, seed: int, height: int, width: int, conditions: list[Condition],
                words: Words) -> tuple[np.ndarray, np.ndarray, str]:  # fmt: skip
    """Corpus image `index` at height x width, its inverse depth and its caption."""
    condition = conditions[index % len(conditions)]
    image, depth, shot = render_street(seed, SPLIT, index, height, width, condition)
    return image, depth, caption(seed, index, words, class_names(shot.label), condition.word)


def build_corpus(seed: int, size: int, height: int, width: int, conditions: list[Condition], words: Words,
                 workers: int = 1) -> Corpus:  # fmt: skip
    """Render the `size` corpus images with `workers` processes."""
    render = partial(render_item, seed=seed, height=height, width=width, conditions=conditions, words=words)
    bar = dict(total=size, desc="render corpus", unit="img")
    if workers <= 1 or size < 64:
        items = [render(i) for i in tqdm(range(size), **bar)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            items = list(tqdm(pool.map(render, range(size), chunksize=16), **bar))
    return Corpus(images=np.stack([item[0] for item in items]), depth=np.stack([item[1] for item in items]),
                  captions=[item[2] for item in items],
                  conditions=[conditions[i % len(conditions)].word for i in range(size)])  # fmt: skip


def held_out(seed: int, count: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` streets of city c that the corpus does not show, in clear weather: images and inverse depths."""
    clear = Condition("clear", "clear", {})
    streets = [render_street(seed, HELD_OUT, i, height, width, clear)[:2] for i in range(count)]
    return np.stack([image for image, _ in streets]), np.stack([depth for _, depth in streets])
