"""The trained generator saved as a Stable Diffusion folder, with the sampler SD 2 base ships."""

from __future__ import annotations

from pathlib import Path

from diffusers import PNDMScheduler

from pipeline.sd import save_pipeline


def inference_scheduler(train_scheduler) -> PNDMScheduler:
    """The sampler stabilityai/stable-diffusion-2-base ships (PNDM, PLMS steps only), with our training betas."""
    config = train_scheduler.config
    return PNDMScheduler(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                         beta_end=config.beta_end, beta_schedule=config.beta_schedule, steps_offset=config.steps_offset,
                         skip_prk_steps=True, set_alpha_to_one=False, prediction_type="epsilon")  # fmt: skip


def save(components: dict, folder: str | Path) -> Path:
    """Write the trained components as a StableDiffusionPipeline folder with SD 2 base's inference scheduler."""
    return save_pipeline({**components, "scheduler": inference_scheduler(components["scheduler"])}, folder)
