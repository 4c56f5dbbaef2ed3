"""Measure: how much of a source image's layout survives the generator's VAE, for VAE sizes and training lengths.

    python bench/vae.py [--images 500] [--variant 16,32,64:300 --variant 16,32:300:noattn ...]

Each variant (`channels per level:steps`, `:noattn` for no attention in the middle block) trains a VAE as the
generator stage does (`pipeline.generator.train`) on the first `--images` corpus images at generator.sizes' height
and width, then passes the source validation images through it (latent mean, decoded) at that size and back to the
source size, and scores them with the source-only model (per-image mIoU against the source labels, as
bench/layout.py does). Prints a table and writes reports/bench/vae.json: the mIoU relative to real images and the
training seconds per variant.
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
from layout import score
from provenance import commit

from pipeline.filter.features import load_reference
from pipeline.generator.corpus import build_corpus
from pipeline.generator.samples import reconstruct
from pipeline.generator.settings import load_conditions, load_size, load_words
from pipeline.generator.train import LossLog, train_vae
from pipeline.manifest import read_manifest
from pipeline.sd import Sizes, build_components
from pipeline.sheets import read_rgb
from pipeline.synthesis.images import resize

OUT = Path("reports/bench/vae.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/seg/source-s0")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--variant", action="append", default=[], help="channels:steps, e.g. 16,32,64:300")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    size = load_size(params["generator"])
    torch.set_num_threads(os.cpu_count() or 1)
    corpus = build_corpus(0, args.images, size.height, size.width, load_conditions(params["generator"]),
                          load_words(params["prompts"]), workers=os.cpu_count() or 1)  # fmt: skip
    rows = read_manifest(Path("data/domains").resolve() / params["data"]["source"] / "val.parquet").to_dict("records")
    sources = [read_rgb(row["image"]) for row in rows]
    reference = load_reference(Path(args.model), None, [0])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        real = float(np.nanmean(score(reference, rows, sources, Path(tmp) / "real", "real")))
        for variant in args.variant or [f"{','.join(map(str, size.vae))}:{size.vae_steps}"]:
            channels, steps, *attention = variant.split(":")
            sizes = Sizes(vae=tuple(int(c) for c in channels.split(",")), unet=(8, 16), vae_attention=not attention)
            vae = build_components(sizes, 0)["vae"]
            start = time.perf_counter()
            train_vae(vae, corpus.images, int(steps), size.batch, size.lr, torch.Generator().manual_seed(0), LossLog())
            seconds = time.perf_counter() - start
            vae.eval()
            images = [resize(reconstruct(vae, resize(s, size.height, size.width)), *s.shape[:2]) for s in sources]
            miou = float(np.nanmean(score(reference, rows, images, Path(tmp) / variant.replace(",", "-"), variant)))
            results[variant] = {"miou": miou, "relative": miou / real, "train_s": seconds,
                                "factor": 2 ** (len(channels.split(",")) - 1)}  # fmt: skip
            print(f"{variant}: {miou:.1f} mIoU ({miou / real:.2f} of real {real:.1f}), trained in {seconds:.0f} s")
    print(f"real source val: {real:.1f} mIoU; generator size {size.height}x{size.width}, {args.images} corpus images")
    print(f"{'variant':<24}{'factor':>7}{'mIoU':>8}{'vs real':>9}{'train s':>9}")
    for name, r in results.items():
        print(f"{name:<24}{r['factor']:>7}{r['miou']:>8.1f}{r['relative']:>9.2f}{r['train_s']:>9.0f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"commit": commit(), "load_average": os.getloadavg()[0], "real_miou": real,
                               "size": [size.height, size.width], "corpus_images": args.images,
                               "results": results}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
