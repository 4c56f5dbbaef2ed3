"""DRSF's two modules (arXiv 2503.13617) as an mmseg segmentor: DFDR recalibrates channels, MDSF aligns domains.

The released DRSF code does not contain DFDR or MDSF; both are our reading of the paper, implemented once in
`pipeline.adapt` (`dfdr.py`, `mdsf.py`, whose docstrings list every choice) and shared with detection. Here:
- DFDR on the backbone levels `dfdr_levels`, inside `extract_feat` (so training and inference both use it);
- MDSF's per-location discriminator on level `mdsf_level` of `extract_feat`'s output (after DFDR, so DFDR is also
  pushed towards domain-invariant channels), over every image of the batch and the interpolations between source
  and pseudo-domains and between pseudo-domains; the domain classes are the source and the groups of the synthetic
  conditions under `domain_groups` (`pipeline.adapt.mdsf.domain_classes`; params.yaml maps the embedded
  generator's ten caption words to the five world conditions it renders them as, so fog/mist and haze are one
  class, not two the discriminator is asked to tell apart); `loss_mdsf` = mdsf_weight * its loss, only when the
  batch holds a synthetic image; `acc_domain` = the discriminator's per-location accuracy (%) on the unmixed images,
  a metric (no "loss" in its name).
- the channel counts for DFDR and the discriminator come from one no-grad 64x64 probe of backbone (+ neck) in eval
  mode at construction, so any architecture in `pipeline.seg.models` works without extra arguments.
Segmentation loss: the decode (and auxiliary) heads on all 2B samples; unlabeled synthetic samples are all 255.
"""

from __future__ import annotations

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor, nn

from pipeline.adapt.dfdr import DFDR, recalibrate
from pipeline.adapt.mdsf import DomainDiscriminator, domain_classes, mdsf_loss
from pipeline.paired import pseudo_domain_names, pseudo_domains


@torch.no_grad()
def probe_channels(modules: list[nn.Module], size: int = 64) -> list[list[int]]:
    """The channel counts of every output level of each module in the chain (each fed the previous one's output),
    from one no-grad probe of a `size` x `size` image in eval mode."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    x, counts = torch.zeros(1, 3, size, size), []
    for m in modules:
        x = list(m(x))
        counts.append([f.shape[1] for f in x])
    for m, mode in zip(modules, modes):
        m.train(mode)
    return counts


@MODELS.register_module()
class DRSFSegmentor(EncoderDecoder):
    """EncoderDecoder + DFDR on `dfdr_levels` + MDSF's adversarial soft-label domain loss on `mdsf_level`, over the
    domain classes of the `num_pseudo_domains` synthetic `conditions` under `domain_groups`."""

    def __init__(self, num_pseudo_domains: int, conditions: list[str], domain_groups: dict | None = None,
                 dfdr_levels=(3,), dfdr_reduction: int = 4, mdsf_level: int = 3, mdsf_weight: float = 0.1,
                 grl_scale: float = 1.0, mix_alpha: float = 1.0, disc_hidden: int = 64, use_dfdr: bool = True,
                 use_mdsf: bool = True, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        names = pseudo_domain_names(conditions)
        if len(names) != int(num_pseudo_domains) + 1:
            raise ValueError(f"{num_pseudo_domains} pseudo-domains but {len(names) - 1} conditions: {conditions}")
        self.domain_names, class_of = domain_classes(names, domain_groups or {})
        self.register_buffer("class_of", class_of, persistent=False)
        self.num_domains = len(self.domain_names)
        self.mdsf_level, self.mdsf_weight, self.grl_scale = mdsf_level, mdsf_weight, grl_scale
        self.mix_alpha, self.use_mdsf = mix_alpha, use_mdsf
        counts = probe_channels([self.backbone, self.neck] if self.with_neck else [self.backbone])
        levels = tuple(dfdr_levels) if use_dfdr else ()
        self.dfdr = nn.ModuleDict({str(i): DFDR(counts[0][i], dfdr_reduction) for i in levels})
        if use_mdsf:
            self.discriminator = DomainDiscriminator(counts[-1][mdsf_level], self.num_domains, disc_hidden)

    def extract_feat(self, inputs: Tensor) -> list[Tensor]:
        x = recalibrate(self.backbone(inputs), self.dfdr)
        return self.neck(x) if self.with_neck else x

    def mdsf_loss(self, features: list[Tensor], data_samples) -> tuple[Tensor, Tensor] | None:
        """(soft-label discriminator loss, domain accuracy), or None when the batch has no synthetic image."""
        domains = self.class_of[pseudo_domains(data_samples).to(features[0].device)]
        if not (domains > 0).any():
            return None
        return mdsf_loss(self.discriminator, features[self.mdsf_level], domains, self.num_domains, self.mix_alpha,
                         self.grl_scale)  # fmt: skip

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
