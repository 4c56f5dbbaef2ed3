"""Depth for depth2img, as the relative inverse depth Stable Diffusion 2 depth was trained on.

SD 2 depth conditions on DPT's output, a relative inverse depth (large near, small far), which the pipeline rescales
to [-1, 1] per image at the latents' size (`condition`, the same arithmetic as the pipeline's `prepare_depth_map`,
so the embedded generator trains on what the pipeline feeds it). Our manifests hold metric depth as uint16 PNGs in
centimetres (0: unknown), so a manifest depth becomes 1/metres (unknown: 0, as far as can be); a source without
depth gets the model's own estimator's.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionDepth2ImgPipeline
from PIL import Image

from pipeline.synthesis.images import resize


def inverse_metres(depth_cm: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint16 centimetre depth as inverse metres (float32, unknown 0), resized to height x width."""
    metres = depth_cm.astype(np.float32) / 100
    inverse = np.divide(1.0, metres, out=np.zeros_like(metres), where=metres > 0)
    return resize(inverse, height, width)


def inverse_depth(path: str, height: int, width: int) -> np.ndarray:
    """The uint16 centimetre depth PNG at `path` as inverse metres (float32), resized to height x width."""
    depth_cm = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if depth_cm is None or depth_cm.dtype != np.uint16:
        raise OSError(f"could not read {path} as a uint16 depth PNG")
    return inverse_metres(depth_cm, height, width)


def condition(depth: torch.Tensor, factor: int) -> torch.Tensor:
    """N x H x W depth maps as the UNet's extra input: bicubic to the latents' size (H/factor x W/factor), then each
    map scaled to [-1, 1], as StableDiffusionDepth2ImgPipeline.prepare_depth_map does with a given depth_map."""
    height, width = depth.shape[-2:]
    depth = F.interpolate(depth.unsqueeze(1), size=(height // factor, width // factor), mode="bicubic",
                          align_corners=False)  # fmt: skip
    low, high = torch.amin(depth, dim=[1, 2, 3], keepdim=True), torch.amax(depth, dim=[1, 2, 3], keepdim=True)
    return 2.0 * (depth - low) / (high - low) - 1.0


@torch.no_grad()
def estimate_depth(pipe: StableDiffusionDepth2ImgPipeline, image: Image.Image) -> np.ndarray:
    """The pipeline's depth estimator (DPT) on `image`, at the image's size."""
    pixels = pipe.feature_extractor(images=image, return_tensors="pt").pixel_values
    estimator = pipe.depth_estimator
    with torch.autocast(estimator.device.type, dtype=estimator.dtype, enabled=estimator.dtype != torch.float32):
        predicted = estimator(pixels.to(estimator.device, estimator.dtype)).predicted_depth
    return resize(predicted[0].float().cpu().numpy(), image.height, image.width)
