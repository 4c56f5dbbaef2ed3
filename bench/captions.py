"""Measure: does the embedded generator follow its captions? The mean colour of its images per caption condition
word, against the corpus's mean colour for that word.

    python bench/captions.py [--count 8] [--strengths 0.3 0.9] [--models models/generator models/generator-depth]

The corpus (params.yaml's `generator` section, rendered again) gives each word's true mean RGB; its spread over the
ten words is what a caption can tell the model (rain is dark, winter bright, evening orange). Then, per word, with
that word's first corpus caption as the sample sheets use it (DPM-Solver++, 20 steps, guidance 7.5, the same seeds
for every word): `--count` text-to-image images from the first model folder, and `--count` held-out streets of city c
(clear weather) through the depth model (second folder) at each `--strength`. For each kind of image: the spread of
the per-word mean colours (root mean square over words and channels of their distance from the mean over words)
relative to the corpus's, and their correlation with the corpus's (1: the model colours every word as the corpus
does; a relative spread near 0: it draws every word alike). Then the text encoder's own share in it: how far apart
its outputs for captions that differ only in the word are (relative spread of the token states after the word),
for the folder's trained encoder and for a fresh one of the same sizes. Prints a table and writes
reports/bench/captions.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from diffusers import StableDiffusionDepth2ImgPipeline, StableDiffusionPipeline
from PIL import Image
from provenance import commit, machine
from tqdm import tqdm

from pipeline.generator.corpus import build_corpus, held_out
from pipeline.generator.samples import generate, load
from pipeline.generator.settings import load_conditions, load_size, load_words
from pipeline.sd import build_components

OUT = Path("reports/bench/captions.json")


def mean_colour(images) -> np.ndarray:
    """The mean RGB of uint8 H x W x 3 `images` (a list or an N x H x W x 3 array)."""
    return np.stack(images).reshape(-1, 3).mean(0)


def fidelity(means: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict:
    """Per-word mean colours `means` against the corpus's `truth`: relative spread and correlation."""
    words = list(truth)
    got = np.stack([means[w] for w in words])
    true = np.stack([truth[w] for w in words])
    got_dev, true_dev = got - got.mean(0), true - true.mean(0)
    spread = float(np.sqrt((got_dev**2).mean()) / np.sqrt((true_dev**2).mean()))
    correlation = float(np.corrcoef(got_dev.ravel(), true_dev.ravel())[0, 1]) if got_dev.any() else 0.0
    return {"relative_spread": spread, "correlation": correlation,
            "mean_rgb": {w: [round(float(c), 2) for c in means[w]] for w in words}}  # fmt: skip


def text_spread(text_encoder, tokenizer, captions: list[str]) -> float:
    """How far apart the encoder's token states are for `captions` (one per word, alike but for the word): the norm of
    their deviation from the mean over captions, relative to their norm, over the tokens from the first that differs."""
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids  # fmt: skip
    first = int((ids != ids[0]).any(dim=0).nonzero()[0])
    with torch.no_grad():
        states = text_encoder(ids)[0][:, first:]
    return float((states - states.mean(0)).norm() / states.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8, help="images per word and kind")
    parser.add_argument("--strengths", nargs="*", type=float, default=[0.3, 0.9])
    parser.add_argument("--models", nargs=2, default=["models/generator", "models/generator-depth"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    params = yaml.safe_load(Path("params.yaml").read_text())
    cfg = params["generator"]
    size, conditions, words = load_size(cfg), load_conditions(cfg), load_words(params["prompts"])
    start = time.perf_counter()
    corpus = build_corpus(cfg["seed"], size.images, size.height, size.width, conditions, words,
                          workers=os.cpu_count() or 1)  # fmt: skip
    labels = np.array(corpus.conditions)
    truth = {c.word: mean_colour(corpus.images[labels == c.word]) for c in conditions}
    prompts = {c.word: corpus.captions[corpus.conditions.index(c.word)] for c in conditions}

    text = load(StableDiffusionPipeline, args.models[0])
    depth = load(StableDiffusionDepth2ImgPipeline, args.models[1], depth_estimator=None, feature_extractor=None)
    streets, depths = held_out(cfg["seed"], args.count, size.height, size.width)
    starts = [Image.fromarray(street) for street in streets]

    kinds = {"text-to-image": lambda prompt: generate(text, prompt, args.count, cfg["seed"],
                                                      height=size.height, width=size.width)}  # fmt: skip
    for strength in args.strengths:
        kinds[f"depth-to-image {strength}"] = lambda prompt, s=strength: generate(
            depth, prompt, args.count, cfg["seed"], image=starts, depth_map=torch.from_numpy(depths), strength=s)
    rows = {"corpus": fidelity(truth, truth)}
    with tqdm(total=len(kinds) * len(prompts), desc="generate", unit="word") as bar:
        for kind, make in kinds.items():
            means = {}
            for word, prompt in prompts.items():
                means[word] = mean_colour(make(prompt))
                bar.update()
            rows[kind] = fidelity(means, truth)
    alike = [f"{prompts[conditions[0].word].rsplit(', ', 1)[0]}, {c.word}" for c in conditions]
    fresh = build_components(size.architecture(), cfg["seed"])["text_encoder"]
    encoders = {"trained": text_spread(text.text_encoder, text.tokenizer, alike),
                "fresh": text_spread(fresh, text.tokenizer, alike)}  # fmt: skip

    print(f"{'images':<22}{'relative spread':>16}{'correlation':>13}")
    for kind, row in rows.items():
        print(f"{kind:<22}{row['relative_spread']:>16.3f}{row['correlation']:>13.2f}")
    print(f"text encoder states after the word, relative spread: {args.models[0]} {encoders['trained']:.3f}, "
          f"a fresh encoder {encoders['fresh']:.3f}")  # fmt: skip
    report = {"command": "python bench/captions.py", "count": args.count, "models": args.models,
              "corpus": {"seed": cfg["seed"], "images": size.images, "height": size.height, "width": size.width},
              "rows": rows, "text_encoder_spread": encoders,
              "seconds": round(time.perf_counter() - start, 1), "commit": commit(), "machine": machine()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
