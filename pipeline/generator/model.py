"""The trained generator saved as Stable Diffusion folders: text-to-image as SD 2 base lays it out, depth-to-image as
SD 2 depth does, both with the sampler those ship (PNDM) and sharing the VAE, text encoder and tokenizer."""

from __future__ import annotations

from pathlib import Path

from diffusers import PNDMScheduler, UNet2DConditionModel

from pipeline.sd import save_depth_pipeline, save_pipeline


def inference_scheduler(train_scheduler) -> PNDMScheduler:
    """The sampler stabilityai/stable-diffusion-2-base and -2-depth ship (PNDM, PLMS steps only), with our betas."""
    config = train_scheduler.config
    return PNDMScheduler(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                         beta_end=config.beta_end, beta_schedule=config.beta_schedule, steps_offset=config.steps_offset,
                         skip_prk_steps=True, set_alpha_to_one=False, prediction_type="epsilon")  # fmt: skip


def save(components: dict, depth_unet: UNet2DConditionModel, folder: str | Path, depth_folder: str | Path) -> None:
    """Write the text-to-image pipeline to `folder` and the depth-to-image one (`depth_unet`) to `depth_folder`."""
    components = {**components, "scheduler": inference_scheduler(components["scheduler"])}
    save_pipeline(components, folder)
    save_depth_pipeline({**components, "unet": depth_unet}, depth_folder)
