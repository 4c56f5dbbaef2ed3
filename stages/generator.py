"""DVC stage `generator`: train the embedded default's small Stable Diffusion into models/generator (text-to-image,
SD 2 base's layout) and models/generator-depth (depth-to-image, SD 2 depth's layout).

When `synthesize.model` names other weights (a real Stable Diffusion), nothing is trained: the stage writes a note
in each folder, an empty samples folder and a loss log without rows, so that DVC's outputs exist.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.atomic import atomic_dir
from pipeline.errors import whole
from pipeline.generator.corpus import CITY, build_corpus
from pipeline.generator.model import save
from pipeline.generator.samples import write_samples
from pipeline.generator.settings import load_conditions, load_size, load_samples, load_words
from pipeline.generator.train import LossLog, train
from pipeline.sd import build_components, write_vocabulary
from stages import params

OUT = Path("models/generator")
OUT_DEPTH = Path("models/generator-depth")
SAMPLES = Path("reports/generator/samples")
LOSS = Path("reports/generator/loss.csv")


def run() -> str:
    cfg = params("generator", required=("seed", "sizes", "conditions", "samples"))
    whole(cfg["seed"], "generator.seed", minimum=0)
    prompts = params("prompts", required=("quality", "locations", "scenes"))
    model = params("synthesize", required=("model",))["model"]
    if Path(str(model)) not in (OUT, OUT_DEPTH):
        return skip(model)
    size, conditions, words, count = load_size(cfg), load_conditions(cfg), load_words(prompts), load_samples(cfg)
    start = time.perf_counter()
    corpus = build_corpus(cfg["seed"], size.images, size.height, size.width, conditions, words,
                          workers=os.cpu_count() or 1)  # fmt: skip
    components = build_components(size.architecture(), cfg["seed"])
    log, depth_unet = train(components, corpus, size, cfg["seed"])
    with atomic_dir(OUT) as tmp, atomic_dir(OUT_DEPTH) as tmp_depth:
        save(components, depth_unet, tmp, tmp_depth)
        for folder in (tmp, tmp_depth):
            write_vocabulary(folder, [c.word for c in conditions])
        sheets = write_samples(tmp, tmp_depth, corpus, count, cfg["seed"], SAMPLES)
        log.write(LOSS)
    return (f"wrote {OUT} and {OUT_DEPTH}: {size.images} images of city {CITY} at {size.height}x{size.width}, "
            f"vae {size.vae_steps} steps (loss {log.final('vae'):.4f}), unet {size.unet_steps} steps "
            f"(loss {log.final('unet'):.4f}), depth unet {size.depth_steps} steps (loss {log.final('depth'):.4f}), "
            f"{len(sheets)} sample sheets, {time.perf_counter() - start:.0f} s")


def skip(model: str) -> str:
    """Write only the note and empty outputs: synthesis uses other weights."""
    reason = (f"synthesize.model is {model!r}, not {OUT} or {OUT_DEPTH}, so synthesis uses those weights and no "
              "generator is trained")
    for out in (OUT, OUT_DEPTH):
        with atomic_dir(out) as tmp:
            (tmp / "README.md").write_text(f"# No generator here\n\n{reason}.\nTo train the embedded default's "
                                           f"generator here, set `synthesize.model: {out}` in params.yaml and run "
                                           "`dvc repro generator`.\n")  # fmt: skip
    with atomic_dir(SAMPLES):
        pass
    LossLog().write(LOSS)
    return f"skipped: {reason}"
