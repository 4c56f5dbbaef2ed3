"""Measure: where does a synthetic image lose its source's layout? The source-only model's per-image mIoU against the
source label (the filter's `miou`, its mean over the images), on the source validation split, after each step that
synthesis takes:

    python bench/layout.py [--images 100] [--sizes 64x128 128x256] [--strengths 0.6 0.75 0.9]

- real: the image as it is;
- resized HxW: down to HxW and back up to the source size (what the generation resolution alone costs);
- vae (with any --modes): through the generator's VAE (its latent mean) at the synthesis size and back (what the
  latent space costs);
- img2img / depth2img at a strength: the synthesize stage's generation, with the prompt stage's grammar over these
  images and the `synthesize` settings of params.yaml, with models/generator and models/generator-depth.

Reads models/seg/source-s0 (or --model), the source's val manifest, params.yaml; prints a table (each row also
relative to real) and writes reports/bench/layout.json (or --out). Tuning the synthesis strength on these numbers
uses the source validation split only, never a target domain.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from diffusers import AutoencoderKL
from provenance import commit
from tqdm import tqdm

from pipeline.filter.features import load_reference, run_pass
from pipeline.generator.samples import reconstruct
from pipeline.manifest import file_sha256, read_manifest, write_manifest
from pipeline.prompts import build_prompts
from pipeline.sheets import read_rgb, write_png
from pipeline.synthesis import check, find_weights, generate, load_pipeline
from pipeline.synthesis.images import resize

OUT = Path("reports/bench/layout.json")
MODELS = {"img2img": "models/generator", "depth2img": "models/generator-depth"}


def score(reference, rows: list[dict], images: list[np.ndarray], folder: Path, desc: str) -> list[float]:
    """Per-image mIoU of the reference model on `images` against the labels of `rows`."""
    folder.mkdir(parents=True)
    written = []
    for row, image in zip(rows, images):
        path = folder / f"{row['id']}.png"
        write_png(image, path)
        written.append({**row, "image": str(path), "sha256": file_sha256(path)})
    write_manifest(written, folder / "manifest.parquet")
    return run_pass(reference, folder / "manifest.parquet", 16, desc).miou.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/seg/source-s0")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--sizes", nargs="*", default=["64x128", "128x256"])
    parser.add_argument("--strengths", nargs="*", type=float, default=[0.6, 0.75, 0.9])
    parser.add_argument("--modes", nargs="*", default=["img2img", "depth2img"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    val = read_manifest(Path("data/domains").resolve() / params["data"]["source"] / "val.parquet").head(args.images)
    rows = val.to_dict("records")
    sources = [read_rgb(row["image"]) for row in rows]
    reference = load_reference(Path(args.model), None, [0])
    prompts = build_prompts({**params["prompts"], "split": "val", "images": len(rows)}, val).to_dict("records")
    cfg = params["synthesize"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def measure(name: str, images: list[np.ndarray], seconds: float = 0.0) -> None:
            mious = score(reference, rows, images, Path(tmp) / name.replace(" ", "-"), name)
            results[name] = {"miou": float(np.nanmean(mious)), "seconds_per_image": seconds / len(images)}

        measure("real", sources)
        for size in args.sizes:
            height, width = map(int, size.split("x"))
            measure(f"resized {size}", [resize(resize(s, height, width), *s.shape[:2]) for s in sources])
        if args.modes:
            vae = AutoencoderKL.from_pretrained(Path(MODELS["img2img"]) / "vae", local_files_only=True)
            measure("vae", [resize(reconstruct(vae, resize(s, cfg["height"], cfg["width"])), *s.shape[:2])
                            for s in sources])  # fmt: skip
        for mode in args.modes:
            for strength in args.strengths:
                settings = check({**cfg, "mode": mode, "model": MODELS[mode], "strength": strength})
                pipe = load_pipeline(find_weights(settings.model), settings, torch.device("cpu"))
                start, images = time.perf_counter(), []
                for first in tqdm(range(0, len(rows), settings.batch), desc=f"{mode} {strength}", unit="batch"):
                    batch = slice(first, first + settings.batch)
                    images += generate(pipe, settings, prompts[batch], rows[batch])
                measure(f"{mode} {strength}", images, time.perf_counter() - start)
    real = results["real"]["miou"]
    print(f"{'step':<20}{'mIoU':>8}{'vs real':>9}{'s/img':>8}")
    for name, result in results.items():
        result["relative"] = result["miou"] / real
        print(f"{name:<20}{result['miou']:>8.1f}{result['relative']:>9.2f}{result['seconds_per_image']:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"commit": commit(), "load_average": os.getloadavg()[0], "images": len(rows),
                                    "model": args.model, "generator": params["generator"]["sizes"], "synthesize": cfg,
                                    "results": results}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
