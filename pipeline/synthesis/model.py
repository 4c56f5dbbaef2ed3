"""Find the weights and load the Stable Diffusion pipeline of a mode, set up for the device.

`synthesize.model` is a local diffusers folder (the embedded generator: models/generator-depth for depth2img,
models/generator for txt2img and img2img) or a hub id. A hub id is
looked up in the Hugging Face cache first and downloaded only when it is not there and HF_HUB_OFFLINE is unset;
either way it ends as a snapshot folder, whose name is the commit, and loads with `local_files_only=True`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionDepth2ImgPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from huggingface_hub import constants, is_offline_mode

from pipeline.errors import InputError
from pipeline.synthesis.settings import Settings

PIPELINES = {
    "txt2img": StableDiffusionPipeline,
    "img2img": StableDiffusionImg2ImgPipeline,
    "depth2img": StableDiffusionDepth2ImgPipeline,
}
SCHEDULERS = {  # built from the model's own scheduler config (betas, prediction type, timestep spacing)
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),  # as Stable Diffusion's own PNDM config
}
LATENT_CHANNELS = 4
DEPTH_MODEL = "stabilityai/stable-diffusion-2-depth"
LOCAL_ROOTS = ("models",)  # the project's model folder: `models/<name>` is a path here, never a hub id


@dataclass(frozen=True)
class Weights:
    """Where a model's files are, and what to record about it."""

    model: str  # as written in params.yaml
    folder: Path
    revision: str | None  # the commit of a hub model; None for a local folder

    @property
    def has_depth_estimator(self) -> bool:
        index = json.loads((self.folder / "model_index.json").read_text())
        return index.get("depth_estimator", [None])[0] is not None

    def identity(self) -> dict:
        """What tells these weights apart: a hub id and commit, or a local folder's file names, sizes and mtimes."""
        if self.revision is not None:
            return {"model": self.model, "revision": self.revision}
        files = sorted(p for p in self.folder.rglob("*") if p.is_file())
        return {"model": self.model,
                "files": [(str(p.relative_to(self.folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]}  # fmt: skip


def looks_local(model: str) -> bool:
    """Whether `model` reads as a path rather than a hub id (`owner/name`)."""
    path = Path(model).expanduser()
    return (path.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1
            or path.parts[0] in LOCAL_ROOTS or path.parent.is_dir())  # fmt: skip


def find_weights(model: str, revision: str | None = None) -> Weights:
    """The folder holding `model`: a local folder, else the hub id's snapshot in the HF cache (downloaded if need be)."""
    where = "params.yaml synthesize.model"
    if Path(model).expanduser().is_dir():
        return Weights(model, Path(model).expanduser(), None)
    if looks_local(model):
        raise InputError(where, f"no model folder {model!r}",
                         "run `dvc repro generator` (it writes models/generator and models/generator-depth), or point "
                         "synthesize.model at a diffusers folder or a hub id")  # fmt: skip
    cache = constants.HF_HUB_CACHE
    try:
        folder = DiffusionPipeline.download(model, revision=revision, cache_dir=cache, local_files_only=True)
    except (OSError, ValueError):
        if is_offline_mode():
            problem = f"{model!r} (revision {revision or 'main'}) is not in the Hugging Face cache {cache}, and " \
                      "HF_HUB_OFFLINE is set"
            raise InputError(where, problem, _fetch_fix(model, cache)) from None
        try:
            folder = DiffusionPipeline.download(model, revision=revision, cache_dir=cache)
        except (OSError, ValueError) as error:
            reason = str(error.__cause__ or error).splitlines()[0]  # diffusers raises from the hub's own error
            problem = f"{model!r} (revision {revision or 'main'}) is not in the Hugging Face cache {cache} and " \
                      f"could not be downloaded ({reason})"
            raise InputError(where, problem, _fetch_fix(model, cache)) from None
    folder = Path(folder)
    return Weights(model, folder, folder.name if folder.parent.name == "snapshots" else None)


def _fetch_fix(model: str, cache: str) -> str:
    return (f"on a machine with internet run `hf download {model}` and copy its Hugging Face cache to {cache} "
            "(or set HF_HOME to a copy), or set synthesize.model to a local diffusers folder")  # fmt: skip


def check_unet(weights: Weights, mode: str) -> None:
    """Reject a UNet that cannot run `mode`: depth2img needs latents + depth (5 channels), the others latents only."""
    channels = json.loads((weights.folder / "unet" / "config.json").read_text())["in_channels"]
    if mode == "depth2img" and channels != LATENT_CHANNELS + 1:
        raise InputError("params.yaml synthesize.model", f"{weights.model}'s UNet takes {channels} input channels; "
                         "depth2img needs a depth model (latents + depth: 5)",
                         f"point synthesize.model at a depth model such as {DEPTH_MODEL} or models/generator-depth, or "
                         "use mode img2img")  # fmt: skip
    if mode != "depth2img" and channels != LATENT_CHANNELS:
        raise InputError("params.yaml synthesize.model", f"{weights.model}'s UNet takes {channels} input channels; "
                         f"{mode} needs a plain text-to-image model ({LATENT_CHANNELS})",
                         "use mode depth2img for a depth model, or a plain Stable Diffusion model")  # fmt: skip


def scheduler_name(weights: Weights, settings: Settings) -> str:
    """The class name of the scheduler `settings.scheduler` gives, known without loading the model."""
    if settings.scheduler == "model":
        return json.loads((weights.folder / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    return SCHEDULERS[settings.scheduler][0].__name__


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: fp32 on the CPU; bf16 on a GPU that supports it, else fp16."""
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def components_to_skip(weights: Weights, mode: str) -> dict:
    """`from_pretrained` arguments for the components a mode's pipeline goes without: no safety checker, and no depth
    estimator for a depth model that lacks one (depth comes from the manifests)."""
    if mode != "depth2img":
        return {"safety_checker": None, "requires_safety_checker": False}
    return {} if weights.has_depth_estimator else {"depth_estimator": None, "feature_extractor": None}


def load_pipeline(weights: Weights, settings: Settings, device: torch.device) -> DiffusionPipeline:
    """The pipeline of `settings.mode` with its scheduler, on `device`, safety checker and progress bar off.

    Attention runs through torch's scaled_dot_product_attention (diffusers' default processor). On a GPU the UNet
    and VAE use channels-last memory, and `settings.compile` compiles the UNet.
    """
    cls = PIPELINES[settings.mode]
    extra = components_to_skip(weights, settings.mode)
    pipe = cls.from_pretrained(weights.folder, local_files_only=True, dtype=pick_dtype(settings.dtype, device),
                               **extra)  # fmt: skip
    if settings.scheduler != "model":
        scheduler, options = SCHEDULERS[settings.scheduler]
        pipe.scheduler = scheduler.from_config(pipe.scheduler.config, **options)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if device.type == "cuda":
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if settings.compile:
        pipe.unet = torch.compile(pipe.unet)
    return pipe
