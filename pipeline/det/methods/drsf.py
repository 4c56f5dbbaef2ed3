"""DRSF (arXiv 2503.13617) as an mmdet detector: DFDR on backbone levels, MDSF with an image-level and an
instance-level discriminator, on top of Faster R-CNN.

DFDR and MDSF are implemented once, in `pipeline.adapt` (shared with segmentation; their docstrings list every
choice). Here, our reading of the paper for detection:
- DFDR on the backbone levels `dfdr_levels` inside `extract_feat` (training and inference), before the neck.
- Image-level MDSF: one per-location discriminator per level in `image_levels` of `extract_feat`'s output (the FPN
  levels, or the C4 feature map), on every image of the batch (domain 0 source, 1..K the synthetic conditions) and
  the interpolations between source and pseudo-domains and between pseudo-domains, with soft domain labels;
  `loss_mdsf_img` = image_weight x the mean over the levels.
- Instance-level MDSF: a discriminator on the RoI features (average-pooled RoIAlign output, as DRSF's released
  instance-level head reads the pooled RoI feature) of the RoIs sampled for the box head, each RoI labelled with its
  image's domain, interpolated between RoIs of different domains the same way; `loss_mdsf_ins` = instance_weight x
  its loss. `acc_domain_img` / `acc_domain_ins` are the discriminators' accuracies (metrics, not losses).
- Gradient reversal before both discriminators (`grl_scale`), constant, as on the segmentation side.
Where ours differs from DRSF's released (MIC-based, maskrcnn-benchmark) code and why:
- multi-class soft-label discriminators and interpolated features (the paper's MDSF) instead of its binary
  source-vs-synthetic heads; no image/instance consistency loss (the paper does not name one);
- the supervised losses (and so the RoIs of the instance level) use the labeled images only: img2img images keep
  their source boxes, which the released code discards; txt2img images take part in the image level only;
- the RoI features are the RoIAlign output before the box head's FC layers (or C4's shared head): the released
  head reads the pooled feature of its C4 box head; with FPN this is the comparable place.
"""

from __future__ import annotations

import copy

import torch
from mmdet.models.detectors import FasterRCNN
from mmdet.registry import MODELS
from torch import Tensor, nn

from pipeline.adapt.dfdr import DFDR, recalibrate
from pipeline.adapt.mdsf import DomainDiscriminator, InstanceDiscriminator, mdsf_loss
from pipeline.det.methods.labeled import labeled_indices
from pipeline.paired import pseudo_domains
from pipeline.seg.methods.drsf import probe_channels


@MODELS.register_module()
class DRSFDetector(FasterRCNN):
    """FasterRCNN + DFDR on `dfdr_levels` + MDSF's image- and instance-level soft-label domain losses."""

    def __init__(self, num_pseudo_domains: int, dfdr_levels=(3,), dfdr_reduction: int = 4, image_levels=(0, 1, 2, 3),
                 image_weight: float = 0.1, instance_weight: float = 0.1, grl_scale: float = 1.0,
                 mix_alpha: float = 1.0, disc_hidden: int = 64, instance_hidden: int = 256, use_dfdr: bool = True,
                 use_mdsf: bool = True, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.num_domains = int(num_pseudo_domains) + 1
        self.image_levels, self.image_weight, self.instance_weight = tuple(image_levels), image_weight, instance_weight
        self.grl_scale, self.mix_alpha, self.use_mdsf = grl_scale, mix_alpha, use_mdsf
        counts = probe_channels([self.backbone, self.neck] if self.with_neck else [self.backbone])
        levels = tuple(dfdr_levels) if use_dfdr else ()
        self.dfdr = nn.ModuleDict({str(i): DFDR(counts[0][i], dfdr_reduction) for i in levels})
        if use_mdsf:
            self.image_discriminators = nn.ModuleDict(
                {str(i): DomainDiscriminator(counts[-1][i], self.num_domains, disc_hidden) for i in self.image_levels})
            roi_channels = self.roi_head.bbox_roi_extractor.out_channels
            self.instance_discriminator = InstanceDiscriminator(roi_channels, self.num_domains, instance_hidden)

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        x = recalibrate(self.backbone(inputs), self.dfdr)
        return tuple(self.neck(x)) if self.with_neck else tuple(x)

    def _domain_loss(self, discriminator: nn.Module, features: Tensor, domains: Tensor) -> tuple[Tensor, Tensor]:
        return mdsf_loss(discriminator, features, domains, self.num_domains, self.mix_alpha, self.grl_scale)

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        x = self.extract_feat(inputs)
        domains = pseudo_domains(data_samples).to(inputs.device)
        keep = labeled_indices(data_samples)
        captured: list[tuple[Tensor, Tensor]] = []
        extractor = self.roi_head.bbox_roi_extractor
        handle = extractor.register_forward_hook(lambda _, args, out: captured.append((args[1], out)))
        try:
            losses = self._supervised_loss(tuple(level[keep] for level in x), [data_samples[i] for i in keep])
        finally:
            handle.remove()
        if not self.use_mdsf or not (domains > 0).any():
            return losses
        image = [self._domain_loss(self.image_discriminators[str(i)], x[i], domains) for i in self.image_levels]
        losses["loss_mdsf_img"] = self.image_weight * torch.stack([loss for loss, _ in image]).mean()
        losses["acc_domain_img"] = torch.stack([acc for _, acc in image]).mean()
        rois, features = captured[0]
        roi_domains = domains[torch.tensor(keep, device=inputs.device)[rois[:, 0].long()]]
        if (roi_domains > 0).any() and (roi_domains == 0).any():
            loss, acc = self._domain_loss(self.instance_discriminator, features, roi_domains)
            losses["loss_mdsf_ins"], losses["acc_domain_ins"] = self.instance_weight * loss, acc
        return losses

    def _supervised_loss(self, x: tuple[Tensor, ...], data_samples: list) -> dict:
        """TwoStageDetector.loss on already extracted features (RPN, then the RoI head), as mmdet 3.3 runs it."""
        proposal_cfg = self.train_cfg.get("rpn_proposal", self.test_cfg.rpn)
        rpn_samples = copy.deepcopy(data_samples)
        for sample in rpn_samples:
            sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
        rpn_losses, proposals = self.rpn_head.loss_and_predict(x, rpn_samples, proposal_cfg=proposal_cfg)
        losses = {(f"rpn_{k}" if "loss" in k and "rpn" not in k else k): v for k, v in rpn_losses.items()}
        losses.update(self.roi_head.loss(x, proposals, data_samples))
        return losses
