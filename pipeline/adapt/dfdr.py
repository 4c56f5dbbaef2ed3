"""DRSF's DFDR (arXiv 2503.13617): entropy-guided channel recalibration of a feature map, F * w(F).

The released DRSF code does not contain DFDR; this is our reading of the paper's abstract:
- per channel c, p_c = softmax of F_c over the H*W locations; e_c = -sum p_c log p_c / log(HW) in [0, 1]. High e_c
  = a diffuse, noise-like activation; low = spatially selective, semantic. H*W = 1 gives e = 0 (no spread to measure).
  Dividing by log(HW), the most a map of that size can have, keeps the MLP's input on one scale from the training
  crops to the larger full images of evaluation (a flat map is 1 at any size; unnormalised it would grow by log 4
  for each doubling of both sides).
- w = sigmoid(MLP([GAP(F), e])), MLP = Linear(2C -> max(C // reduction, 8)), ReLU, Linear(-> C).
  w in (0, 1): the module can only attenuate channels (suppress noise), as in squeeze-and-excitation.
- init: the last Linear has zero weights and bias +3, so every w starts at sigmoid(3) ~ 0.953 (near identity, about
  5 % uniform down-scaling) and the first steps learn only the per-channel bias; the entropy is not detached.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def channel_entropy(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C): entropy of each channel's spatial softmax, normalised by log(H*W) to [0, 1]."""
    n, c = features.shape[:2]
    flat = features.float().reshape(n, c, -1)
    if flat.shape[-1] < 2:
        return flat.new_zeros(n, c)
    log_p = F.log_softmax(flat, dim=-1)
    return -(log_p.exp() * log_p).sum(-1) / math.log(flat.shape[-1])


class DFDR(nn.Module):
    """Entropy-guided channel recalibration: F * sigmoid(MLP([GAP(F), entropy(F)]))."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.constant_(self.mlp[2].bias, 3.0)

    def weights(self, features: Tensor) -> Tensor:
        """(N, C) channel weights in (0, 1)."""
        stats = torch.cat([features.mean(dim=(2, 3)), channel_entropy(features).to(features.dtype)], dim=1)
        return torch.sigmoid(self.mlp(stats))

    def forward(self, features: Tensor) -> Tensor:
        return features * self.weights(features)[:, :, None, None]


def recalibrate(features: list[Tensor], modules: nn.ModuleDict) -> list[Tensor]:
    """`features` (a list of levels) with DFDR applied on the levels that `modules` holds (keys: level numbers)."""
    out = list(features)
    for level, module in modules.items():
        out[int(level)] = module(out[int(level)])
    return out
