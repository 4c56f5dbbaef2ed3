"""Benchmark: images/s of dgsynth's synthesis path against a plain diffusers loop, on the same prompts.

    python bench/synthesize.py [--images 32] [--mode img2img] [--model models/generator]

Ours: the `synthesize` settings of params.yaml (DPM-Solver++, its steps, batches, dtype) through
`pipeline.synthesis.generate`. Plain: what a first script does, one pipeline call per image with the model's own
scheduler and diffusers' default steps (50) and dtype (fp32); and, to separate batching from the scheduler, one
call per image with our scheduler and steps. Model loading is not timed; the first batch of each path is a warm-up.
Needs data/prompts.parquet, the source domain and the model (`dvc repro synthesize` makes them). Writes
reports/bench/synthesize.json.

    python bench/synthesize.py --gpu [--images 32] [--batch 16]     # CUDA only
    python bench/synthesize.py --tiny [--images 4] [--out FILE]     # the same code on the CPU, at toy sizes

`--gpu`: Stable Diffusion 2 base's architecture at its published sizes (stabilityai/stable-diffusion-2-base's UNet,
VAE and OpenCLIP ViT-H text tower; the CLIP tokenizer of `pipeline.sd`) with random weights, saved as a diffusers
folder; txt2img at 512x512, 20 DPM-Solver++ steps, guidance 7.5, on prompts in the project's grammar. Ours is
`load_pipeline` + `generate` (batches of `--batch`, dtype auto: bf16, SDPA, channels-last, torch.compile); plain is
StableDiffusionPipeline.from_pretrained with the same scheduler and steps, one image per call, in diffusers' default
fp32 and in the model card's fp16. Writes reports/bench/synthesize-gpu.json. `--tiny` runs the same on any device
at toy sizes (64x64, 2 steps, no compile) and writes JSON only to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel

import provenance
from pipeline.prompts import read_prompts
from pipeline.sd import clip_tokenizer, save_pipeline
from pipeline.sheets import read_rgb
from pipeline.synthesis import check, find_weights, generate, load_pipeline
from pipeline.synthesis.depth import inverse_depth
from pipeline.synthesis.images import resize
from pipeline.synthesis.model import PIPELINES, Weights, components_to_skip, pick_dtype
from pipeline.synthesis.run import read_sources, records

PROMPTS = Path("data/prompts.parquet")
OUT = Path("reports/bench/synthesize.json")
GPU_OUT = Path("reports/bench/synthesize-gpu.json")
# stabilityai/stable-diffusion-2-base: unet/, vae/ and text_encoder/config.json (the rest are the classes' defaults:
# CrossAttnDownBlock2D x3 + DownBlock2D, 2 UNet layers per block, 32 groups, 4 latent channels); 865.9M UNet, 83.7M
# VAE and 340.4M text-encoder parameters. attention_head_dim is diffusers' name for the number of heads here (64
# channels each). CLIPTextModel has no projection layer: projection_dim (OpenCLIP ViT-H's 1024) changes no compute.
SD2_BASE = {
    "size": 512, "steps": 20,
    "unet": {"block_out_channels": (320, 640, 1280, 1280), "attention_head_dim": (5, 10, 20, 20),
             "cross_attention_dim": 1024, "use_linear_projection": True, "sample_size": 64},
    "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "sample_size": 512},
    "text": {"hidden_size": 1024, "num_hidden_layers": 23, "num_attention_heads": 16, "intermediate_size": 4096,
             "projection_dim": 1024, "hidden_act": "gelu"},
}  # fmt: skip
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
TINY = {
    "size": 64, "steps": 2,
    "unet": {"block_out_channels": (32, 32, 64, 64), "attention_head_dim": (1, 1, 2, 2), "cross_attention_dim": 32,
             "use_linear_projection": True, "sample_size": 8, "layers_per_block": 1},
    "vae": {"block_out_channels": (32, 32, 32, 32), "sample_size": 64, "layers_per_block": 1},
    "text": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "projection_dim": 32, "hidden_act": "gelu"},
}  # fmt: skip


def _rate(work, items: list, per_call: int) -> float:
    """Images per second of `work(chunk)` over `items` in chunks of `per_call`, after one warm-up chunk."""
    work(items[:per_call])
    start = time.perf_counter()
    for i in range(0, len(items), per_call):
        work(items[i : i + per_call])
    return len(items) / (time.perf_counter() - start)


def sd2_folder(sizes: dict, folder: Path) -> Path:
    """A Stable Diffusion 2 base of `sizes` (SD2_BASE or TINY) with random weights, saved as a diffusers folder."""
    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tokenizer), max_position_embeddings=tokenizer.model_max_length,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, **sizes["text"])  # fmt: skip
    levels = len(sizes["vae"]["block_out_channels"])
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * levels,
                        up_block_types=("UpDecoderBlock2D",) * levels, **sizes["vae"])  # fmt: skip
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                              skip_prk_steps=True, set_alpha_to_one=False)  # SD 2 base's  # fmt: skip
    components = {"unet": UNet2DConditionModel(**sizes["unet"]), "vae": vae, "text_encoder": CLIPTextModel(text),
                  "tokenizer": tokenizer, "scheduler": scheduler}  # fmt: skip
    return save_pipeline(components, folder)


def prompt_rows(images: int) -> list[dict]:
    """`images` prompt rows in the project's grammar (params.yaml `prompts`), one condition after another."""
    cfg = yaml.safe_load(Path("params.yaml").read_text())["prompts"]
    return [{"prompt": f"{cfg['quality']} {cfg['locations'][i % len(cfg['locations'])]}; City, bus, road, sidewalk, "
                       f"building, sky, car, {cfg['conditions'][i % len(cfg['conditions'])]}",
             "negative_prompt": cfg["negative"], "seed": i} for i in range(images)]  # fmt: skip


def sd2_bench(args: argparse.Namespace) -> None:
    """`--gpu` (SD 2 base's sizes, CUDA only) or `--tiny` (toy sizes, any device): ours against a plain loop."""
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("bench/synthesize.py --gpu needs a CUDA GPU, and torch.cuda.is_available() is False here; "
                         "run `python bench/synthesize.py --tiny` to check the same code on the CPU at toy sizes")  # fmt: skip
    sizes = SD2_BASE if args.gpu else TINY
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = yaml.safe_load(Path("params.yaml").read_text())["synthesize"]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Weights("stable-diffusion-2-base architecture, random weights", sd2_folder(sizes, Path(tmp)), None)
        settings = check(cfg | {"model": str(weights.folder), "revision": None, "mode": "txt2img",
                                "height": sizes["size"], "width": sizes["size"], "steps": sizes["steps"],
                                "guidance": 7.5, "scheduler": "dpm++", "batch": args.batch, "dtype": "auto",
                                "compile": args.gpu})  # fmt: skip
        rows = prompt_rows(max(args.images // settings.batch, 1) * settings.batch)
        ours = load_pipeline(weights, settings, device)
        parameters = {name: sum(p.numel() for p in getattr(ours, name).parameters())
                      for name in ("unet", "vae", "text_encoder")}  # fmt: skip
        rates = {"ours": _rate(lambda chunk: generate(ours, settings, chunk, [{}] * len(chunk)), rows, settings.batch)}
        scheduler = ours.scheduler
        del ours
        for dtype in ("fp32", "fp16") if device.type == "cuda" else ("fp32",):
            plain = StableDiffusionPipeline.from_pretrained(weights.folder, local_files_only=True, safety_checker=None,
                                                            **({"dtype": torch.float16} if dtype == "fp16" else {}))  # fmt: skip
            plain.scheduler = type(scheduler).from_config(scheduler.config)
            plain.set_progress_bar_config(disable=True)
            plain.to(device)

            def one(chunk, pipe=plain):
                row = chunk[0]
                pipe(prompt=row["prompt"], negative_prompt=row["negative_prompt"], height=settings.height,
                     width=settings.width, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                     generator=torch.Generator("cpu").manual_seed(row["seed"]))  # fmt: skip

            rates[f"plain_{dtype}"] = _rate(one, rows, 1)
            del plain
    paths = {"ours": {"batch": settings.batch, "dtype": DTYPE_NAMES[pick_dtype(settings.dtype, device)],
                      "channels_last": device.type == "cuda", "compile": settings.compile, "img_s": rates["ours"]}}  # fmt: skip
    paths |= {name: {"batch": 1, "dtype": name.removeprefix("plain_"), "channels_last": False, "compile": False,
                     "img_s": rate} for name, rate in rates.items() if name != "ours"}  # fmt: skip
    load = os.getloadavg()
    report = {
        "device": provenance.device(device.type == "cuda"), "sizes": "stable-diffusion-2-base" if args.gpu else "tiny",
        "parameters": parameters, "mode": settings.mode, "size": [settings.height, settings.width],
        "steps": settings.steps, "guidance": settings.guidance, "scheduler": type(scheduler).__name__,
        "images": len(rows), "paths": paths,
        "speedup_vs_plain": {name: rates["ours"] / rate for name, rate in rates.items() if name != "ours"},
        "command": " ".join(["python", *sys.argv]), "commit": provenance.commit(), "load_average": load,
    }  # fmt: skip
    print(f"{report['sizes']} ({sum(parameters.values()) / 1e6:.1f}M parameters), txt2img {settings.height}x"
          f"{settings.width}, {settings.steps} {report['scheduler']} steps, guidance {settings.guidance}, "
          f"{len(rows)} images on {report['device']} (load average {load[0]:.2f})")  # fmt: skip
    print(f"{'path':<12}{'dtype':<10}{'batch':>6}{'compile':>9}{'img/s':>9}{'ours x':>8}")
    for name, entry in paths.items():
        print(f"{name:<12}{entry['dtype']:<10}{entry['batch']:>6}{str(entry['compile']):>9}{entry['img_s']:>9.3f}"
              f"{rates['ours'] / entry['img_s']:>8.2f}")
    out = args.out or (GPU_OUT if args.gpu else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="default: 32; 4 with --tiny")
    parser.add_argument("--mode", default=None, help="default: synthesize.mode")
    parser.add_argument("--model", default=None, help="default: synthesize.model")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--gpu", action="store_true", help="SD 2 base's architecture at 512x512, random weights (CUDA)")
    sizes.add_argument("--tiny", action="store_true", help="the --gpu code at toy sizes, on any device")
    parser.add_argument("--batch", type=int, default=None, help="--gpu/--tiny: our batch (default 16 / 2)")
    parser.add_argument("--out", type=Path, default=None, help=f"--gpu/--tiny: the JSON (default {GPU_OUT} / none)")
    args = parser.parse_args()
    if args.gpu or args.tiny:
        args.images = args.images or (32 if args.gpu else 4)
        args.batch = args.batch or (16 if args.gpu else 2)
        sd2_bench(args)
        return
    args.images = args.images or 32
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
                                                     **components_to_skip(weights, settings.mode))  # fmt: skip
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
        if settings.mode == "depth2img" and source["depth"] is not None:
            depth = inverse_depth(source["depth"], settings.height, settings.width)
            inputs["depth_map"] = torch.from_numpy(depth)[None]
        plain(**inputs, **options)

    results["plain"] = _rate(one_by_one, items, 1)
    plain.scheduler = our_scheduler
    results["plain_our_scheduler"] = _rate(
        lambda chunk: one_by_one(chunk, num_inference_steps=settings.steps, guidance_scale=settings.guidance), items, 1
    )
    report = {
        "device": provenance.device(device.type == "cuda"),
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
