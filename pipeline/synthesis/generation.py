"""One batch of images: one pipeline call, one CPU torch.Generator per image seeded with its row's seed.

Each image's noise (and its VAE sample, for img2img and depth2img) comes from its own generator, made on the CPU as
diffusers recommends so that a seed gives the same noise on every device; so an image does not depend on the other
images of its batch, up to the float rounding of batched kernels (see tests/test_synthesize.py for how close).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DiffusionPipeline
from PIL import Image

from pipeline.sheets import read_rgb
from pipeline.synthesis.depth import estimate_depth, inverse_depth
from pipeline.synthesis.images import resize, to_uint8
from pipeline.synthesis.settings import Settings


def generate(pipe: DiffusionPipeline, settings: Settings, rows: list[dict], sources: list[dict]) -> list[np.ndarray]:
    """The images of the prompt `rows` as uint8 RGB arrays; `sources` are their source manifest rows.

    txt2img images are height x width; img2img and depth2img start from the source image resized to the model's
    size, and their images are resized back to the source's size, so the source's label and boxes fit them.
    """
    inputs = {
        "prompt": [row["prompt"] for row in rows],
        "negative_prompt": [row["negative_prompt"] for row in rows],
        "num_inference_steps": settings.steps,
        "guidance_scale": settings.guidance,
        "generator": [torch.Generator("cpu").manual_seed(int(row["seed"])) for row in rows],
        "output_type": "np",
    }
    if settings.mode == "txt2img":
        inputs |= {"height": settings.height, "width": settings.width}
    else:
        starts = [Image.fromarray(resize(read_rgb(s["image"]), settings.height, settings.width)) for s in sources]
        inputs |= {"image": starts, "strength": settings.strength}
    if settings.mode == "depth2img":
        inputs["depth_map"] = torch.from_numpy(np.stack([_depth(pipe, settings, source, start)
                                                         for source, start in zip(sources, starts)]))  # fmt: skip
    images = to_uint8(pipe(**inputs).images)
    if not settings.labeled:
        return list(images)
    return [resize(image, source["height"], source["width"]) for image, source in zip(images, sources)]


def _depth(pipe: DiffusionPipeline, settings: Settings, source: dict, start: Image.Image) -> np.ndarray:
    """The inverse depth of a source: from its manifest, else from the model's depth estimator."""
    if source["depth"] is not None:
        return inverse_depth(source["depth"], settings.height, settings.width)
    return estimate_depth(pipe, start)
