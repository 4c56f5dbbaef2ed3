"""Sample sheets: what the trained generator makes of each caption condition.

One sheet per condition, rows top to bottom: a corpus image of it and its VAE reconstruction (what the latent space
keeps), text-to-image samples of its caption, streets of city c that the corpus never showed (clear weather), and
those streets through the depth model at three strengths (depth-to-image: their depth maps hold the layout, the
caption sets the look; the higher the strength, the more of the look and the less of the layout comes from the
model). The models load from their folders with `from_pretrained`, as the synthesize stage loads
them, and sample with DPM-Solver++ and classifier-free guidance. Every condition uses the same seeds, so the sheets
differ by the caption alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionDepth2ImgPipeline, StableDiffusionPipeline
from PIL import Image

from pipeline.atomic import atomic_dir
from pipeline.generator.corpus import Corpus, held_out
from pipeline.generator.train import pixels
from pipeline.sheets import contact_sheet, slug, write_png
from pipeline.synthesis.images import to_uint8

STEPS = 20
GUIDANCE = 7.5
TILE_HEIGHT = 128
STRENGTHS = (0.3, 0.6, 0.9)  # depth-to-image rows: low, middle, DIDEX's


def load(cls, folder: str | Path, **extra):
    """A saved generator pipeline of class `cls` with the DPM-Solver++ sampler, offline."""
    pipe = cls.from_pretrained(folder, local_files_only=True, **extra)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompt: str, count: int, seed: int, **inputs) -> list[np.ndarray]:
    """`count` uint8 images of `prompt`, image k drawn from seed `seed + k`; `inputs` go to the pipeline."""
    generators = [torch.Generator().manual_seed(seed + k) for k in range(count)]
    images = pipe([prompt] * count, num_inference_steps=STEPS, guidance_scale=GUIDANCE, generator=generators,
                  output_type="np", **inputs).images  # fmt: skip
    return list(to_uint8(images))


@torch.no_grad()
def reconstruct(vae, image: np.ndarray) -> np.ndarray:
    """`image` through the VAE: the decoding of its latent mean."""
    decoded = vae.decode(vae.encode(pixels(image[None])).latent_dist.mean).sample
    return to_uint8(((decoded[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())


def write_samples(model: str | Path, depth_model: str | Path, corpus: Corpus, count: int, seed: int,
                  out: str | Path) -> list[Path]:  # fmt: skip
    """Write `out/<slug>.png` per caption condition (the caption of its first corpus image)."""
    text = load(StableDiffusionPipeline, model)
    depth = load(StableDiffusionDepth2ImgPipeline, depth_model, depth_estimator=None, feature_extractor=None)
    height, width = corpus.images.shape[1:3]
    streets, depths = held_out(seed, count, height, width)
    starts = [Image.fromarray(street) for street in streets]
    written = []
    with atomic_dir(out) as tmp:
        for word in dict.fromkeys(corpus.conditions):
            index = corpus.conditions.index(word)
            prompt, image = corpus.captions[index], corpus.images[index]
            rows = [
                (f"{word}\ncorpus image, VAE", [image, reconstruct(text.vae, image)]),
                ("text-to-image", generate(text, prompt, count, seed, height=height, width=width)),
                ("held-out streets", list(streets)),
                *((f"depth-to-image\nstrength {strength}",
                   generate(depth, prompt, count, seed, image=starts, depth_map=torch.from_numpy(depths),
                            strength=strength)) for strength in STRENGTHS),
            ]  # fmt: skip
            write_png(contact_sheet(rows, TILE_HEIGHT), tmp / f"{slug(word)}.png")
            written.append(Path(out) / f"{slug(word)}.png")
    return written
