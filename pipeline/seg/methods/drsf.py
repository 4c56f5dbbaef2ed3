"""DRSF's two modules (arXiv 2503.13617) as an mmseg segmentor: DFDR recalibrates channels, MDSF aligns domains.

The released DRSF code does not contain DFDR or MDSF; this is a first implementation from the abstract. Choices:

DFDR (entropy-guided channel recalibration), on the backbone levels `dfdr_levels`, inside `extract_feat` (so
training and inference both use it):
- per channel c, p_c = softmax of F_c over the H*W locations; e_c = -sum p_c log p_c / log(HW) in [0, 1]. High e_c
  = a diffuse, noise-like activation; low = spatially selective, semantic. H*W = 1 gives e = 0 (no spread to measure).
- w = sigmoid(MLP([GAP(F), e])), MLP = Linear(2C -> max(C // reduction, 8)), ReLU, Linear(-> C); output F * w.
  w in (0, 1): the module can only attenuate channels (suppress noise), as in squeeze-and-excitation.
- init: the last Linear has zero weights and bias +3, so every w starts at sigmoid(3) ~ 0.953 (near identity, about
  5 % uniform down-scaling) and the first steps learn only the per-channel bias; the entropy is not detached.

MDSF (multi-domain soft fusion), on level `mdsf_level` of `extract_feat`'s output (after DFDR, so DFDR is also
pushed towards domain-invariant channels):
- pairs the i-th source with the i-th synthetic sample (the batch contract: B source then B synthetic; unequal
  halves are cut to the shorter); lambda ~ Beta(mix_alpha, mix_alpha) per pair from torch's global RNG;
  f_mix = lambda f_s + (1 - lambda) f_t with soft label lambda onehot(0) + (1 - lambda) onehot(pseudo_domain_t).
- a discriminator (1x1 conv C -> disc_hidden, ReLU, 1x1 conv -> K + 1 logits per location, like DRSF's released
  image-level DA head but multi-class) classifies the pseudo domain of every location of f_s, f_t and f_mix;
  the loss is the soft-label cross entropy averaged over all locations of the 3B maps.
- gradient reversal (constant `grl_scale`, no DANN ramp) sits between the features and the discriminator: the
  discriminator minimises the loss, the backbone (and DFDR) maximise it. The mix is built from the reversed features.
- `loss_mdsf` = mdsf_weight * that loss, only when the batch holds both domains; `acc_domain` = the discriminator's
  per-location accuracy (%, as mmseg's acc_seg) on f_s and f_t (f_mix has no hard label); a metric, its name has
  no "loss".
- the channel counts for DFDR and the discriminator come from one no-grad 64x64 probe of backbone (+ neck) in eval
  mode at construction, so any architecture in `pipeline.seg.models` works without extra arguments.
Segmentation loss: the decode (and auxiliary) heads on all 2B samples; unlabeled synthetic samples are all 255.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor, nn

from pipeline.seg.batch import pseudo_domains, split_batch


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -scale."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.scale * grad, None


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    return GradientReversal.apply(x, scale)


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


class DomainDiscriminator(nn.Module):
    """Per-location pseudo-domain classifier: 1x1 conv, ReLU, 1x1 conv to num_domains logits."""

    def __init__(self, channels: int, num_domains: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, num_domains, 1))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


def soft_domain_labels(lam: Tensor, domains: Tensor, num_domains: int) -> Tensor:
    """(B,) lambdas and (B,) synthetic domain indices -> (B, num_domains): lam onehot(0) + (1 - lam) onehot(domain)."""
    labels = (1 - lam)[:, None] * F.one_hot(domains, num_domains).to(lam.dtype)
    labels[:, 0] += lam
    return labels


@MODELS.register_module()
class DRSFSegmentor(EncoderDecoder):
    """EncoderDecoder + DFDR on `dfdr_levels` + MDSF's adversarial soft-label domain loss on `mdsf_level`."""

    def __init__(self, num_pseudo_domains: int, dfdr_levels=(3,), dfdr_reduction: int = 4, mdsf_level: int = 3,
                 mdsf_weight: float = 0.1, grl_scale: float = 1.0, mix_alpha: float = 1.0, disc_hidden: int = 64,
                 use_dfdr: bool = True, use_mdsf: bool = True, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.num_domains = int(num_pseudo_domains) + 1
        self.dfdr_levels = tuple(dfdr_levels) if use_dfdr else ()
        self.mdsf_level, self.mdsf_weight, self.grl_scale = mdsf_level, mdsf_weight, grl_scale
        self.mix_alpha, self.use_mdsf = mix_alpha, use_mdsf
        backbone_channels, feature_channels = self._probe_channels()
        self.dfdr = nn.ModuleDict({str(i): DFDR(backbone_channels[i], dfdr_reduction) for i in self.dfdr_levels})
        if use_mdsf:
            self.discriminator = DomainDiscriminator(feature_channels[mdsf_level], self.num_domains, disc_hidden)

    @torch.no_grad()
    def _probe_channels(self) -> tuple[list[int], list[int]]:
        modules = [self.backbone, self.neck] if self.with_neck else [self.backbone]
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        x = list(self.backbone(torch.zeros(1, 3, 64, 64)))
        y = list(self.neck(x)) if self.with_neck else x
        for m, mode in zip(modules, modes):
            m.train(mode)
        return [f.shape[1] for f in x], [f.shape[1] for f in y]

    def extract_feat(self, inputs: Tensor) -> list[Tensor]:
        x = list(self.backbone(inputs))
        for level in self.dfdr_levels:
            x[level] = self.dfdr[str(level)](x[level])
        return self.neck(x) if self.with_neck else x

    def mdsf_loss(self, features: list[Tensor], data_samples) -> tuple[Tensor, Tensor] | None:
        """(soft-label discriminator loss, domain accuracy), or None when the batch lacks a domain."""
        feats = features[self.mdsf_level]
        halves = split_batch(torch.arange(len(data_samples)), data_samples)
        b = min(len(halves.source), len(halves.synthetic))
        if b == 0:
            return None
        target = pseudo_domains(halves.synthetic_samples[:b]).to(feats.device)
        if not ((target >= 1) & (target < self.num_domains)).all():
            raise ValueError(f"synthetic pseudo_domain outside 1..{self.num_domains - 1}: {target.tolist()}")
        reversed_ = grad_reverse(feats, self.grl_scale)
        f_s, f_t = reversed_[halves.source[:b]], reversed_[halves.synthetic[:b]]
        alpha = torch.tensor(float(self.mix_alpha))
        lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(feats.device, feats.dtype)
        f_mix = lam[:, None, None, None] * f_s + (1 - lam[:, None, None, None]) * f_t
        hard = torch.cat([torch.zeros_like(target), target])
        soft = torch.cat([F.one_hot(hard, self.num_domains).to(feats.dtype),
                          soft_domain_labels(lam, target, self.num_domains)])  # fmt: skip
        logits = self.discriminator(torch.cat([f_s, f_t, f_mix]))
        loss = -(soft[:, :, None, None] * F.log_softmax(logits, dim=1)).sum(1).mean()
        acc = 100 * (logits[: 2 * b].argmax(1) == hard[:, None, None]).float().mean().detach()
        return loss, acc

    def loss(self, inputs: Tensor, data_samples) -> dict:
        x = self.extract_feat(inputs)
        losses = self._decode_head_forward_train(x, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        mdsf = self.mdsf_loss(x, data_samples) if self.use_mdsf else None
        if mdsf is not None:
            losses["loss_mdsf"] = self.mdsf_weight * mdsf[0]
            losses["acc_domain"] = mdsf[1]
        return losses
