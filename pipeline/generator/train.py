"""Train the small Stable Diffusion as Stable Diffusion was trained, scaled down to minutes on a CPU.

Phase 1 trains the VAE to reconstruct the corpus (pixel MSE, which learns colours faster than L1 in a few hundred
steps, and a small KL term; no GAN),
then sets its latent scale the way SD did (scaling_factor = 1 / std of the latents) and encodes the corpus once.
Phase 2 trains the UNet and the CLIP text encoder together (the encoder stays as built with `train_text` off, as SD
keeps CLIP's) to predict the noise added to those latents under the DDPM schedule, with captions dropped to "" one
time in ten for classifier-free guidance.
Phase 3 makes the depth model as SD 2 depth was made from SD 2 base: a copy of the UNet with one more input channel
(zero-initialised, so it starts as the text-to-image model) is fine-tuned on the same loss with each image's depth
map beside its noised latents, scaled as the depth-to-image pipeline scales it; the text encoder stays frozen.
Everything draws from one seeded generator, so a run is reproducible; the loss of every few steps goes to a `LossLog`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from tqdm import trange

from pipeline.atomic import atomic_path
from pipeline.generator.corpus import Corpus
from pipeline.generator.settings import Size
from pipeline.sd import with_depth_input
from pipeline.synthesis.depth import condition

KL_WEIGHT = 1e-6  # on the KL summed over a latent, against MSE averaged over pixels: a near-free latent, as in SD
# A fresh encoder's posterior has std 1, so its samples bury the signal early on; trained SD VAEs end far narrower.
# Starting at std 0.05 lowers the reconstruction error of a few hundred steps (L1 0.125 instead of 0.134 at 400).
START_LOGVAR = -6.0
CAPTION_DROP = 0.1  # share of captions replaced by "" (the unconditional prompt of classifier-free guidance)
# Offset noise (Guttenberg, 2023): a random per-channel constant added to the noise hides the image's mean colour
# from the noised latent, so the model must take it from the caption. With the first generator (latents at 1/4 of
# the image side, commit 2b8c037), 600 steps took the spread of the predicted latent means across conditions from 2%
# of the corpus's spread at the usual 0.1 to 96% at 0.3. The default's latents at 1/2 do not follow their captions
# (bench/captions.py: their images' colours spread under 1% of the corpus's over the caption words).
OFFSET_NOISE = 0.3
# Min-SNR-5 loss weights (Hang et al., 2023, who report about 3x faster convergence): less weight on the nearly
# clean timesteps, whose fine detail a small model cannot learn in minutes, more on the noisy ones that set layout
# and colour.
MIN_SNR_GAMMA = 5.0
WARMUP = 0.05  # share of each phase's steps with a linearly rising learning rate, then cosine decay
LOG_EVERY = 10  # steps per row of the loss log (the mean over those steps)


@dataclass
class LossLog:
    """Mean losses over every `LOG_EVERY` steps (and a phase's last steps), numbered across both phases."""

    rows: list[tuple[int, str, float]] = field(default_factory=list)
    pending: list[float] = field(default_factory=list)

    def add(self, step: int, phase: str, loss: float, last: bool = False) -> None:
        self.pending.append(loss)
        if step % LOG_EVERY == 0 or last:
            self.rows.append((step, phase, float(np.mean(self.pending))))
            self.pending.clear()

    def final(self, phase: str) -> float:
        """The last logged loss of `phase`."""
        return next(loss for _, p, loss in reversed(self.rows) if p == phase)

    def write(self, path: str | Path) -> None:
        """Write `step,phase,loss` rows as CSV, atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "phase", "loss"])
            writer.writerows((step, phase, f"{loss:.6f}") for step, phase, loss in self.rows)


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 images as float N x 3 x H x W in [-1, 1], the VAE's input range."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def reconstruction_loss(vae, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The VAE's training loss on a batch: pixel MSE of a posterior sample's decoding, plus the small KL term."""
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(generator)).sample
    return F.mse_loss(x_hat, x) + KL_WEIGHT * posterior.kl().mean()


def _fit(phase: str, modules: list, batch_loss, steps: int, lr: float, log: LossLog, first_step: int) -> None:
    """`steps` AdamW steps on the parameters of `modules`, warmup then cosine decay; `batch_loss()` draws a batch."""
    optimizer = torch.optim.AdamW([p for module in modules for p in module.parameters()], lr=lr, fused=True)
    schedule = get_cosine_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    for module in modules:
        module.train()
    for step in (bar := trange(steps, desc=f"train {phase}", unit="step")):
        loss = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        log.add(first_step + step, phase, loss.item(), last=step == steps - 1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    for module in modules:
        module.eval()


def narrow_posterior(vae, logvar: float) -> None:
    """Start the encoder's posterior at std exp(logvar / 2) instead of 1, where training would take it anyway."""
    with torch.no_grad():
        vae.quant_conv.bias[vae.config.latent_channels :] += logvar  # quant_conv's outputs: means, then logvars


def train_vae(vae, images: np.ndarray, steps: int, batch: int, lr: float, generator: torch.Generator,
              log: LossLog, first_step: int = 1) -> None:  # fmt: skip
    """Phase 1: fit the VAE to the corpus `images` (uint8 N x H x W x 3), from a narrow posterior."""

    def batch_loss() -> torch.Tensor:
        index = torch.randint(len(images), (batch,), generator=generator)
        return reconstruction_loss(vae, pixels(images[index.numpy()]), generator)

    narrow_posterior(vae, START_LOGVAR)
    _fit("vae", [vae], batch_loss, steps, lr, log, first_step)


@torch.no_grad()
def encode(vae, images: np.ndarray, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The latent distributions (mean, std) of `images`; sets the VAE's scaling_factor to 1 / std of the latents."""
    means, stds = [], []
    for start in range(0, len(images), batch):
        posterior = vae.encode(pixels(images[start : start + batch])).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    mean, std = torch.cat(means), torch.cat(stds)
    sample = mean + std * torch.randn(mean.shape, generator=generator)
    vae.register_to_config(scaling_factor=float(1 / sample.std()))
    return mean, std


def train_unet(components: dict, latents: tuple[torch.Tensor, torch.Tensor], captions: list[str], steps: int,
               batch: int, lr: float, generator: torch.Generator, log: LossLog, first_step: int = 1,
               depth: torch.Tensor | None = None, train_text: bool = False) -> None:  # fmt: skip
    """Phase 2: fit the UNet (and the text encoder, with `train_text`) to predict the noise in noised latents,
    given the captions. Phase 3, with `depth` (N x 1 x h x w, `pipeline.synthesis.depth.condition`): fit a depth UNet
    (5 input channels) to the same, the depth map beside the noised latents, the text encoder frozen."""
    unet, text_encoder, tokenizer = components["unet"], components["text_encoder"], components["tokenizer"]
    scheduler, scale = components["scheduler"], components["vae"].config.scaling_factor
    tokenize = lambda texts: tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,  # noqa: E731
                                       truncation=True, return_tensors="pt").input_ids  # fmt: skip
    ids, empty = tokenize(captions), tokenize([""])
    mean, std = latents

    def batch_loss() -> torch.Tensor:
        index = torch.randint(len(mean), (batch,), generator=generator)
        x0 = (mean[index] + std[index] * torch.randn(mean[index].shape, generator=generator)) * scale
        dropped = torch.rand(batch, generator=generator) < CAPTION_DROP
        tokens = torch.where(dropped[:, None], empty, ids[index])
        noise = torch.randn(x0.shape, generator=generator)
        noise += OFFSET_NOISE * torch.randn((batch, x0.shape[1], 1, 1), generator=generator)
        t = torch.randint(scheduler.config.num_train_timesteps, (batch,), generator=generator)
        noised = scheduler.add_noise(x0, noise, t)
        if depth is not None:
            noised = torch.cat([noised, depth[index]], dim=1)
        with torch.set_grad_enabled(train_text):
            states = text_encoder(tokens)[0]
        prediction = unet(noised, t, states).sample
        snr = scheduler.alphas_cumprod[t] / (1 - scheduler.alphas_cumprod[t])
        weight = snr.clamp(max=MIN_SNR_GAMMA) / snr
        return (weight * F.mse_loss(prediction, noise, reduction="none").mean(dim=(1, 2, 3))).mean()

    if depth is None:
        _fit("unet", [unet, text_encoder] if train_text else [unet], batch_loss, steps, lr, log, first_step)
    else:
        _fit("depth", [unet], batch_loss, steps, lr, log, first_step)


def train(components: dict, corpus: Corpus, size: Size, seed: int) -> tuple[LossLog, UNet2DConditionModel]:
    """The three phases on all cores (or OMP_NUM_THREADS): the components are trained in place; returns the loss
    log and the depth UNet."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    generator = torch.Generator().manual_seed(seed)
    log = LossLog()
    train_vae(components["vae"], corpus.images, size.vae_steps, size.batch, size.lr, generator, log)
    latents = encode(components["vae"], corpus.images, 4 * size.batch, generator)
    train_unet(components, latents, corpus.captions, size.unet_steps, size.batch, size.lr, generator, log,
               first_step=size.vae_steps + 1, train_text=size.train_text)  # fmt: skip
    depth_unet = with_depth_input(components["unet"])
    train_unet({**components, "unet": depth_unet}, latents, corpus.captions, size.depth_steps, size.batch, size.lr,
               generator, log, first_step=size.vae_steps + size.unet_steps + 1,
               depth=condition(torch.from_numpy(corpus.depth), size.factor))  # fmt: skip
    return log, depth_unet
