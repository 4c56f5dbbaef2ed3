"""DIDEX's adaptation stage (Niemeijer et al., 2024): the synthetic images are an unlabeled pseudo-target domain,
adapted to with DACS (Tranheden et al., 2021) as DAFormer runs it, optionally with MIC's masked consistency.

Per batch (B source then B synthetic images, `pipeline.seg.batch`):
- `decode.loss_ce`: the supervised CE on the source images;
- the mean teacher labels each synthetic image (argmax of its softmax) with one quality weight per image, the
  fraction of its pixels whose confidence reaches `pseudo_threshold` (DACS/DAFormer use >=; 0.968 is theirs);
- `loss_mix`: ClassMix of source i and synthetic i (mask from the source label), then DACS's strong augmentation
  (`dacs_augment`: colour jitter of strength 0.2 with probability 0.8, gaussian blur with sigma U(0.15, 1.15) and a
  kernel a tenth of the image's height with probability 0.5), so the student never sees the teacher's view;
  weighted CE on the student's prediction, weight 1 on source pixels and the synthetic image's quality weight
  elsewhere;
- `loss_mic` (if `mic_mask_ratio` > 0): MIC (Hoyer et al., 2023) as its `separatetrgaug` mode: the synthetic image,
  strongly augmented, with random `mic_block`-pixel blocks zeroed (in normalized space, as MIC masks the normalized
  image) through the student, weighted CE to the teacher's pseudo-labels of the clean image;
- `pseudo_weight`: the mean quality weight, logged only (no "loss" in its name): DVCLive's `pseudo_weight` curve.
The synthetic images' own labels are never read, so txt2img images work. Deviations from DAFormer/MIC: the jitter
and blur are drawn per image (DACS draws once per batch), as `pipeline.seg.methods.teacher` implements them, with
a square blur kernel (DACS: a tenth of each side; the training crops are square); MIC's
block grid is `ceil` of the image over `mic_block` (MIC rounds and resizes); ClassMix takes floor(K/2) classes
(DACS ceil); no feature-distance regularization, rare-class sampling or ignoring of the image's top and bottom rows
in the quality weight (DAFormer's, for Cityscapes' ego car and borders).
"""

from __future__ import annotations

import math

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from pipeline.adapt.teacher import block_mask
from pipeline.paired import split_batch
from pipeline.seg.batch import labels
from pipeline.seg.methods.teacher import MeanTeacher, class_mix, color_jitter, gaussian_blur, pixel_ce


def dacs_pseudo_labels(probs: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """DACS's pseudo-labels of N x C x H x W class probabilities: the argmax (N x H x W) and one weight per image,
    the fraction of its pixels whose max probability is at least `threshold` (N)."""
    confidence, pseudo_label = probs.max(dim=1)
    weight = (confidence >= threshold).float().flatten(1).mean(1)
    return pseudo_label, weight


def dacs_augment(images: Tensor) -> Tensor:
    """DACS's strong augmentation of N x 3 x H x W RGB images in [0, 1] (colour jitter, then blur)."""
    x = color_jitter(images, 0.2, 0.2, 0.2, 0.2, prob=0.8)
    tenth = math.ceil(0.1 * images.shape[2])
    size = tenth if tenth % 2 else tenth - 1  # DACS's kernel: a tenth of the height, made odd by going down
    return gaussian_blur(x, torch.empty(len(x)).uniform_(0.15, 1.15), size=size, prob=0.5)


@MODELS.register_module()
class DIDEXSegmentor(MeanTeacher, EncoderDecoder):
    """An EncoderDecoder trained with DACS-style self-training on the synthetic pseudo-target (see the module)."""

    def __init__(self, *args, ema_alpha: float = 0.999, pseudo_threshold: float = 0.968, mix: bool = True,
                 mic_mask_ratio: float = 0.0, mic_block: int = 32, mic_weight: float = 1.0, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.pseudo_threshold = pseudo_threshold
        self.mix = mix
        self.mic_mask_ratio = mic_mask_ratio
        self.mic_block = mic_block
        self.mic_weight = mic_weight
        self._init_teacher(ema_alpha)

    def loss(self, inputs: Tensor, data_samples) -> dict:
        batch = split_batch(inputs, data_samples)
        losses = super().loss(batch.source, batch.source_samples)
        target = batch.synthetic
        teacher_logits, _ = self.teacher_forward(target)
        probs = torch.softmax(self.to_image_size(teacher_logits, target), dim=1)
        pseudo_label, quality = dacs_pseudo_labels(probs, self.pseudo_threshold)
        pixel_weight = quality[:, None, None].expand_as(pseudo_label)
        if self.mix:
            source_label = labels(batch.source_samples).to(inputs.device)
            mixed, mixed_label, mask = class_mix(batch.source, source_label, target, pseudo_label)
            mixed_weight = torch.where(mask.bool(), torch.ones_like(pixel_weight), pixel_weight)
            strong = self.photometric(mixed, dacs_augment)
            losses["loss_mix"] = pixel_ce(self.student_logits(strong), mixed_label, mixed_weight)
        if self.mic_mask_ratio > 0:
            mask = block_mask(pseudo_label.shape, self.mic_block, self.mic_mask_ratio, device=inputs.device)
            masked_logits = self.student_logits(self.photometric(target, dacs_augment) * mask)
            losses["loss_mic"] = self.mic_weight * pixel_ce(masked_logits, pseudo_label, pixel_weight)
        losses["pseudo_weight"] = quality.mean()
        return losses
