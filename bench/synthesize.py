"""Benchmark: images/s of dgsynth's synthesis path against a plain diffusers loop, on the same prompts.

    python bench/synthesize.py [--images 32] [--mode img2img] [--model models/generator]

Ours: the `synthesize` settings of params.yaml (DPM-Solver++, its steps, batches, dtype) through
`pipeline.synthesis.generate`. Plain: what a first script does, one pipeline call per image with the model's own
scheduler and diffusers' default steps (50) and dtype (fp32); and, to separate batching from the scheduler, one
call per image with our scheduler and steps. Model loading is not timed; the first batch of each path is a warm-up.
Needs data/prompts.parquet, the source domain and the model (`dvc repro synthesize` makes them). Writes
reports/bench/synthesize.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import yaml
from PIL import Image

from pipeline.prompts import read_prompts
from pipeline.sheets import read_rgb
from pipeline.synthesis import check, find_weights, generate, load_pipeline
from pipeline.synthesis.images import resize
from pipeline.synthesis.model import PIPELINES
from pipeline.synthesis.run import read_sources, records

PROMPTS = Path("data/prompts.parquet")
OUT = Path("reports/bench/synthesize.json")


def _rate(work, items: list, per_call: int) -> float:
    """Images per second of `work(chunk)` over `items` in chunks of `per_call`, after one warm-up chunk."""
    work(items[:per_call])
    start = time.perf_counter()
    for i in range(0, len(items), per_call):
        work(items[i : i + per_call])
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--mode", default=None, help="default: synthesize.mode")
    parser.add_argument("--model", default=None, help="default: synthesize.model")
    args = parser.parse_args()
    cfg = yaml.safe_load(Path("params.yaml").read_text())["synthesize"]
    cfg |= {k: v for k, v in (("mode", args.mode), ("model", args.model)) if v is not None}
    settings = check(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    table = read_prompts(PROMPTS).head(args.images)
    sources, _ = read_sources(table, PROMPTS, Path("data/domains"))
    items = list(zip(records(table), sources))
    weights = find_weights(settings.model, settings.revision)

    ours = load_pipeline(weights, settings, device)
    results = {"ours": _rate(lambda chunk: generate(ours, settings, *map(list, zip(*chunk))), items, settings.batch)}
    our_scheduler = ours.scheduler
    del ours

    plain = PIPELINES[settings.mode].from_pretrained(weights.folder, local_files_only=True,
                                                     **({} if settings.mode == "depth2img" else {"safety_checker": None}))  # fmt: skip
    plain.set_progress_bar_config(disable=True)
    plain.to(device)
    default_scheduler = plain.scheduler

    def one_by_one(chunk, **options):
        row, source = chunk[0]
        inputs = {"prompt": row["prompt"], "negative_prompt": row["negative_prompt"],
                  "generator": torch.Generator("cpu").manual_seed(int(row["seed"]))}  # fmt: skip
        if settings.mode == "txt2img":
            inputs |= {"height": settings.height, "width": settings.width}
        else:
            start = resize(read_rgb(source["image"]), settings.height, settings.width)
            inputs |= {"image": Image.fromarray(start), "strength": settings.strength}
        plain(**inputs, **options)

    results["plain"] = _rate(one_by_one, items, 1)
    plain.scheduler = our_scheduler
    results["plain_our_scheduler"] = _rate(
        lambda chunk: one_by_one(chunk, num_inference_steps=settings.steps, guidance_scale=settings.guidance), items, 1
    )
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or 'x86_64'}, "
        f"{torch.get_num_threads()} threads)",
        "model": settings.model, "mode": settings.mode, "images": len(items), "size": [settings.height, settings.width],
        "ours": {"scheduler": type(our_scheduler).__name__, "steps": settings.steps,
                 "batch": settings.batch, "dtype": settings.dtype, "img_s": results["ours"]},
        "plain": {"scheduler": type(default_scheduler).__name__, "steps": 50, "batch": 1, "dtype": "fp32",
                  "img_s": results["plain"]},
        "plain_our_scheduler": {"steps": settings.steps, "batch": 1, "img_s": results["plain_our_scheduler"]},
        "speedup": results["ours"] / results["plain"],
        "speedup_from_batching": results["ours"] / results["plain_our_scheduler"],
        "gpu": "no GPU was lent to this session" if device.type == "cpu" else "measured on the GPU above",
    }  # fmt: skip
    print(f"{'path':<22}{'scheduler':<30}{'steps':>6}{'batch':>6}{'img/s':>9}")
    for name in ("ours", "plain", "plain_our_scheduler"):
        entry = report[name]
        scheduler = entry.get("scheduler", report["ours"]["scheduler"])
        print(f"{name:<22}{scheduler:<30}{entry['steps']:>6}{entry['batch']:>6}{entry['img_s']:>9.2f}")
    print(f"ours / plain = {report['speedup']:.2f}x; ours / plain with our scheduler = {report['speedup_from_batching']:.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
