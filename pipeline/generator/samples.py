"""Sample sheets: what the trained generator draws for each caption condition, beside a corpus image of it.

The model is loaded from its folder with `StableDiffusionPipeline.from_pretrained`, as the synthesize stage loads
it, and sampled with DPM-Solver++ and classifier-free guidance. Every condition uses the same seeds, so the
sheets differ by the caption alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

from pipeline.atomic import atomic_dir
from pipeline.generator.corpus import Corpus
from pipeline.sheets import contact_sheet, slug, write_png

STEPS = 20
GUIDANCE = 7.5
TILE_HEIGHT = 128


def load(folder: str | Path) -> StableDiffusionPipeline:
    """The saved generator with the DPM-Solver++ sampler, offline."""
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: StableDiffusionPipeline, prompt: str, count: int, seed: int, height: int, width: int) -> list:
    """`count` uint8 images of `prompt`, image k drawn from seed `seed + k`."""
    generators = [torch.Generator().manual_seed(seed + k) for k in range(count)]
    images = pipe(prompt, height=height, width=width, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                  num_images_per_prompt=count, generator=generators, output_type="np").images  # fmt: skip
    return list((images * 255).round().astype(np.uint8))


def write_samples(model: str | Path, corpus: Corpus, count: int, seed: int, out: str | Path) -> list[Path]:
    """Write `out/<slug>.png` per caption condition: the caption of its first corpus image, `count` samples."""
    pipe = load(model)
    height, width = corpus.images.shape[1:3]
    written = []
    with atomic_dir(out) as tmp:
        for word in dict.fromkeys(corpus.conditions):
            index = corpus.conditions.index(word)
            samples = generate(pipe, corpus.captions[index], count, seed, height, width)
            rows = [(f"{word}\ncorpus image", [corpus.images[index]]), (f"{word}\ngenerated", samples)]
            write_png(contact_sheet(rows, TILE_HEIGHT), tmp / f"{slug(word)}.png")
            written.append(Path(out) / f"{slug(word)}.png")
    return written
