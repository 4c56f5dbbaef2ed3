"""Feature statistics and the distances the filter ranks synthetic images by.

An image is described by the per-channel mean and standard deviation of a reference network's feature maps at a few
levels (`channel_stats`). The source images' descriptions are fitted by a Gaussian (`SourceGaussian`):
- the descriptions are centred on the source mean, and each block (the channel means, or the channel stds, of one
  level) is divided by its root-mean-square source deviation, so that every level weighs alike whatever its scale;
  the covariance is then shrunk towards a multiple of the identity by Ledoit and Wolf's estimate (2004) of the
  optimal weight: with a few hundred source images and a thousand dimensions the sample covariance is singular,
  and the shrunk one is well conditioned. (Dividing each dimension by its own deviation instead would blow up the
  channels that barely vary over the source images, and any image would be far along them.)
- `mahalanobis` is the distance of a description to that Gaussian;
- `frechet` is a per-image Frechet distance between channel Gaussians: each channel of an image is a 1-D Gaussian
  N(m, s^2) over its pixels, each channel of the source one N(M, S^2) over all source pixels, and the squared
  2-Wasserstein (Frechet) distance between them is (m - M)^2 + (s - S)^2; summed over the channels of a level and
  divided by the level's total source variance (the sum of S^2), it is scale-free, and the levels' values are
  averaged (our choice; dividing each channel by its own S^2 blows up, as above, on channels that barely vary).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def channel_stats(features: list[torch.Tensor]) -> torch.Tensor:
    """(B, sum of 2 C_l) per-image descriptions: for each level l, the C_l channel means, then the C_l channel stds
    (over the pixels, population std)."""
    parts = []
    for f in features:
        flat = f.float().flatten(2)
        parts += [flat.mean(2), flat.std(2, unbiased=False)]
    return torch.cat(parts, 1)


def shrunk_covariance(x: np.ndarray, weight: float | None = None) -> tuple[np.ndarray, float]:
    """The covariance (1 - w) S + w mu I of centred samples `x` (n, p), S = x^T x / n, mu = tr(S) / p, and w: the
    given `weight`, or Ledoit and Wolf's estimate min(b, d) / d with d = ||S - mu I||_F^2 / p and
    b = sum_i ||x_i x_i^T - S||_F^2 / (n^2 p)."""
    n, p = x.shape
    sample = x.T @ x / n
    mu = np.trace(sample) / p
    if weight is None:
        d = ((sample - mu * np.eye(p)) ** 2).sum() / p
        squared = x**2
        b = ((squared.T @ squared).sum() / n - (sample**2).sum()) / (n * p)
        weight = 0.0 if d == 0 else float(min(b, d) / d)
    return (1 - weight) * sample + weight * mu * np.eye(p), float(weight)


@dataclass
class SourceGaussian:
    """The source descriptions' mean, the scale of each dimension (its block's deviation), the Cholesky factor of the
    shrunk covariance of the scaled descriptions, and the per-channel source Gaussians (M, S) of each level for
    `frechet`."""

    mean: np.ndarray
    scale: np.ndarray
    cholesky: np.ndarray
    shrinkage: float
    channels: list[int]  # C_l of every level, in order
    channel_mean: np.ndarray  # M, all levels' channels concatenated
    channel_std: np.ndarray  # S

    @classmethod
    def fit(cls, stats: np.ndarray, channels: list[int], shrinkage: float | None = None) -> SourceGaussian:
        """Fit `stats` (n images, sum of 2 C_l) of the source; `shrinkage` fixes the weight instead of Ledoit-Wolf's."""
        stats = stats.astype(np.float64)
        if len(stats) < 2:
            raise ValueError(f"fitting the source statistics needs at least 2 images, got {len(stats)}")
        mean = stats.mean(0)
        means, stds = split_levels(stats - mean, channels)
        scale = np.concatenate([np.full(b.shape[1], np.sqrt((b**2).mean()) or 1.0) for m, s in zip(means, stds)
                                for b in (m, s)])  # fmt: skip
        covariance, weight = shrunk_covariance((stats - mean) / scale, shrinkage)
        means, stds = split_levels(stats, channels)
        channel_mean = np.concatenate([m.mean(0) for m in means])
        second = np.concatenate([(s**2 + m**2).mean(0) for m, s in zip(means, stds)])
        channel_std = np.sqrt(np.maximum(second - channel_mean**2, 1e-12))
        try:
            cholesky = np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError as error:  # e.g. 2 images: Ledoit-Wolf's weight is 0, the covariance singular
            raise ValueError(f"the covariance of {len(stats)} images' descriptions with shrinkage {weight:.3g} is "
                             "singular") from error  # fmt: skip
        return cls(mean, scale, cholesky, weight, list(channels), channel_mean, channel_std)

    def mahalanobis(self, stats: np.ndarray) -> np.ndarray:
        """The Mahalanobis distance of each row of `stats` to the source Gaussian."""
        z = (stats.astype(np.float64) - self.mean) / self.scale
        solved = np.linalg.solve(self.cholesky, z.T)
        return np.sqrt((solved**2).sum(0))

    def frechet(self, stats: np.ndarray) -> np.ndarray:
        """The per-image Frechet distance of the channel Gaussians (see the module docstring)."""
        means, stds = split_levels(stats.astype(np.float64), self.channels)
        edges = np.cumsum([0, *self.channels])
        levels = []
        for level, (m, s) in enumerate(zip(means, stds)):
            big_m, big_s = (v[edges[level] : edges[level + 1]] for v in (self.channel_mean, self.channel_std))
            levels.append(((m - big_m) ** 2 + (s - big_s) ** 2).sum(1) / (big_s**2).sum())
        return np.mean(levels, axis=0)


def split_levels(stats: np.ndarray, channels: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The channel means and stds of every level from descriptions laid out as `channel_stats` makes them."""
    means, stds, start = [], [], 0
    for c in channels:
        means.append(stats[:, start : start + c])
        stds.append(stats[:, start + c : start + 2 * c])
        start += 2 * c
    if start != stats.shape[1]:
        raise ValueError(f"descriptions have {stats.shape[1]} values, levels of {channels} channels make {start}")
    return means, stds
