"""Stable Diffusion's components built from sizes: the embedded generator's model, and tiny random ones for tests.

Every part has the real architecture (diffusers' UNet2DConditionModel and AutoencoderKL, transformers'
CLIPTextModel with OpenAI's CLIP tokenizer), so a folder written by `save_pipeline` loads through the same
`from_pretrained` code as real Stable Diffusion weights, and one written by `save_depth_pipeline` (a UNet that
takes latents + depth, 5 channels, as `with_depth_input` makes from a text-to-image one) through the same code as
stabilityai/stable-diffusion-2-depth. The tokenizer is rebuilt offline from the CLIP BPE
vocabulary that mmsegmentation ships (`mmseg/utils/bpe_simple_vocab_16e6.txt.gz`), the way CLIP's own
SimpleTokenizer reads it: 49,408 tokens, OpenAI's ids.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionDepth2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

BPE_MERGES = 48894  # CLIP uses the first 48,894 merges of the file (lines 1..48894 after the header)


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in vocabulary order (printable bytes first)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(256 - len(printable))]


def clip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """OpenAI's CLIP tokenizer, from the BPE file inside mmsegmentation (no download)."""
    path = files("mmseg") / "utils" / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")[1 : BPE_MERGES + 1]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in lines]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    merges = [tuple(m.split()) for m in lines]
    return CLIPTokenizer({t: i for i, t in enumerate(tokens)}, merges, model_max_length=max_length)


@dataclass(frozen=True)
class Sizes:
    """The widths of a small Stable Diffusion; `unet` and `vae` list the channels per resolution level."""

    unet: tuple[int, ...] = (32, 64, 64)
    vae: tuple[int, ...] = (32, 64)
    text_width: int = 64
    text_layers: int = 2
    latent_channels: int = 4
    unet_in_channels: int = 4  # 5 for a depth-conditioned UNet (latents + depth), as SD 2 depth uses
    attention_head_dim: int = 8
    groups: int = 8  # GroupNorm groups in the UNet and the VAE
    vae_attention: bool = True  # self-attention in the VAE's middle block (SD's VAE has it)
    # cross-attention (text) and self-attention per UNet level; None: SD's pattern, every level but the lowest
    unet_attention: tuple[bool, ...] | None = None


def build_components(sizes: Sizes = Sizes(), seed: int = 0) -> dict:
    """Random-initialised components for a StableDiffusionPipeline of `sizes` (scheduler: SD's DDPM settings)."""
    torch.manual_seed(seed)
    levels = len(sizes.unet)
    attention = sizes.unet_attention or (True,) * (levels - 1) + (False,)
    unet = UNet2DConditionModel(
        sample_size=64,  # SD's latent size; only a default height, but img2img/depth2img pipelines need an int here
        in_channels=sizes.unet_in_channels,
        out_channels=sizes.latent_channels,
        block_out_channels=sizes.unet,
        layers_per_block=1,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        cross_attention_dim=sizes.text_width,
        attention_head_dim=sizes.attention_head_dim,
        norm_num_groups=sizes.groups,
    )
    vae = AutoencoderKL(
        block_out_channels=sizes.vae,
        down_block_types=("DownEncoderBlock2D",) * len(sizes.vae),
        up_block_types=("UpDecoderBlock2D",) * len(sizes.vae),
        latent_channels=sizes.latent_channels,
        norm_num_groups=sizes.groups,
        mid_block_add_attention=sizes.vae_attention,
    )
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=sizes.text_width,
            intermediate_size=sizes.text_width * 4,
            num_hidden_layers=sizes.text_layers,
            num_attention_heads=max(1, sizes.text_width // 32),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, steps_offset=1, clip_sample=False)  # fmt: skip
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def save_pipeline(components: dict, folder: str | Path) -> Path:
    """Write `components` as a diffusers StableDiffusionPipeline folder (no safety checker), loadable offline."""
    pipe = StableDiffusionPipeline(**components, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def with_depth_input(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """A copy of `unet` that also takes a depth map: one more input channel, whose conv_in weights start at zero, so
    the copy begins as the text-to-image model it was made from (how SD 2 depth was made from SD 2 base)."""
    widened = UNet2DConditionModel.from_config({**unet.config, "in_channels": unet.config.in_channels + 1})
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, torch.zeros_like(weight[:, :1])], dim=1)
    widened.load_state_dict(state)
    return widened


def save_depth_pipeline(components: dict, folder: str | Path) -> Path:
    """Write `components` (a depth UNet) as a StableDiffusionDepth2ImgPipeline folder, as stabilityai/stable-diffusion-
    2-depth lays it out, without its depth estimator: depth comes from the manifests."""
    pipe = StableDiffusionDepth2ImgPipeline(**components, depth_estimator=None, feature_extractor=None)
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


VOCABULARY = "conditions.json"  # in an embedded generator's folder: the condition words its captions used


def write_vocabulary(folder: Path, words: list[str]) -> None:
    """Record the caption condition words a generator was trained on, for `read_vocabulary`."""
    (Path(folder) / VOCABULARY).write_text(json.dumps({"conditions": sorted(words)}, indent=1) + "\n")


def read_vocabulary(folder: Path) -> set[str] | None:
    """The condition words a generator's captions used; None for weights that do not record them (real SD)."""
    path = Path(folder) / VOCABULARY
    return set(json.loads(path.read_text())["conditions"]) if path.is_file() else None
