"""DiGA's training (Shen et al., 2023) with the synthetic images as the translated source G(x): symmetric
distillation from a mean teacher, a cross-domain mixture and threshold-free prototype pseudo-labels.

Per batch (B source images x then B synthetic images G(x), source i paired with synthetic i):
- the augmented view x_aug = beta * A(x) + (1 - beta) * x, with A a photometric augmentation (brightness, contrast,
  saturation, random grayscale, gaussian blur) run on the de-normalized [0, 1] image and re-normalized with the data
  preprocessor's mean and std; factors drawn per image from torch's global RNG (DiGA's exact A is not reproduced);
- cross-domain mixture: ClassMix mask M from the source label, x_mix = M * x_aug + (1 - M) * G(x); the label is
  M * y + (1 - M) * y_G, with y_G the synthetic image's own label where it has one (img2img, depth2img keep the
  layout), else the teacher's pseudo-label filtered threshold-free: a pixel is kept iff the teacher's argmax equals
  its nearest class prototype (255 otherwise; `pseudo_labels=False` keeps the bare argmax);
- prototypes (K x D buffer `prototypes`): EMA (`proto_momentum`) of per-class means of the teacher's penultimate
  features (the input of the decode head's classifier) on source pixels with their labels; a class's first mean
  initialises it (a class never seen is NaN and never nearest), since a 1e-4 EMA from zeros would take ~10^4 steps;
- `loss_kd` = kd_weight * [CE(P_T(x), S(x_aug)) + 0.5 * CE(P_T(x_aug), S(x))] over the batch [x, x_mix] (x_mix's
  augmented view is A applied to x_mix), at the decode head's resolution; `loss_mix` the CE on x_mix; `decode.loss_ce`
  the CE on the source. `mix=False` drops the mixture: the synthetic images are then unused.
The second, adaptation stage of DiGA (self-training on a real target) is not part of this segmentor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor

from pipeline.paired import split_batch
from pipeline.seg.batch import IGNORE, labels
from pipeline.seg.methods.teacher import MeanTeacher, class_mix, pixel_ce


def soft_ce(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Mean over pixels of -sum_c P_c log_softmax(logits)_c, P = softmax(target_logits) (detached)."""
    return -(torch.softmax(target_logits.detach(), dim=1) * torch.log_softmax(logits, dim=1)).sum(1).mean()


def symmetric_kd(teacher_clean: Tensor, teacher_aug: Tensor, student_clean: Tensor, student_aug: Tensor) -> Tensor:
    """DiGA's symmetric distillation: CE(P_T(x), S(x_aug)) + 0.5 * CE(P_T(x_aug), S(x)); teacher logits detached."""
    return soft_ce(teacher_clean, student_aug) + 0.5 * soft_ce(teacher_aug, student_clean)


def nearest_prototype(features: Tensor, prototypes: Tensor) -> Tensor:
    """Per pixel of N x D x h x w features, the index of the nearest of K x D prototypes (NaN rows never win)."""
    n, d, h, w = features.shape
    flat = features.permute(0, 2, 3, 1).reshape(-1, d).float()
    distances = torch.cdist(flat, prototypes.float().nan_to_num(0.0))
    distances[:, prototypes.isnan().any(1)] = math.inf
    return distances.argmin(1).reshape(n, h, w)


def prototype_agreement(pseudo_label: Tensor, features: Tensor, prototypes: Tensor) -> Tensor:
    """The threshold-free rule: `pseudo_label` (N x h x w) where it equals the nearest prototype's class, else 255."""
    agree = nearest_prototype(features, prototypes) == pseudo_label
    return torch.where(agree, pseudo_label, torch.full_like(pseudo_label, IGNORE))


@torch.no_grad()
def update_prototypes(prototypes: Tensor, features: Tensor, labels: Tensor, momentum: float) -> Tensor:
    """New prototypes: c_k = (1 - momentum) * c_k + momentum * mean of the features labelled k (N x h x w labels at
    the features' resolution, 255 ignored); a NaN prototype is set to the mean; classes absent keep theirs."""
    d = features.shape[1]
    flat = features.permute(0, 2, 3, 1).reshape(-1, d).to(prototypes.dtype)
    flat_labels = labels.reshape(-1)
    updated = prototypes.clone()
    for k in flat_labels.unique().tolist():
        if k == IGNORE or k >= len(prototypes):
            continue
        mean = flat[flat_labels == k].mean(0)
        updated[k] = mean if prototypes[k].isnan().any() else (1 - momentum) * prototypes[k] + momentum * mean
    return updated


def photometric_augment(images: Tensor) -> Tensor:
    """A: per-image brightness, contrast, saturation jitter, grayscale (p 0.2), gaussian blur (p 0.5) on N x 3 x H x W
    RGB images in [0, 1]; random factors from torch's global RNG."""
    n, device = len(images), images.device

    def factor(low, high):
        return torch.empty(n, 1, 1, 1, device=device).uniform_(low, high)

    def gray(x):
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)

    x = images * factor(0.6, 1.4)
    mean_gray = gray(x).mean((1, 2, 3), keepdim=True)
    x = (x - mean_gray) * factor(0.6, 1.4) + mean_gray
    x = (x - gray(x)) * factor(0.6, 1.4) + gray(x)
    x = torch.where(torch.rand(n, 1, 1, 1, device=device) < 0.2, gray(x), x).clamp(0, 1)
    blur = torch.rand(n, device=device) < 0.5
    sigma = torch.where(blur, torch.empty(n, device=device).uniform_(0.1, 2.0), torch.full((n,), 1e-3, device=device))
    taps = torch.arange(-4, 5, device=device, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (3N) x 9, one per channel
    flat = F.pad(x.reshape(1, 3 * n, *x.shape[2:]), (4, 4, 4, 4), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=3 * n)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=3 * n)
    return flat.reshape_as(x)


@MODELS.register_module()
class DiGASegmentor(MeanTeacher, EncoderDecoder):
    """An EncoderDecoder trained with DiGA's distillation and cross-domain mixture (see the module)."""

    def __init__(self, *args, ema_alpha: float = 0.999, kd_weight: float = 0.5, aug_beta: float = 0.4,
                 mix: bool = True, pseudo_labels: bool = True, proto_momentum: float = 1e-4, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.kd_weight = kd_weight
        self.aug_beta = aug_beta
        self.mix = mix
        self.pseudo_labels = pseudo_labels
        self.proto_momentum = proto_momentum
        head = self.decode_head
        dims = head.conv_seg.in_channels if hasattr(head, "conv_seg") else head.in_channels
        self.register_buffer("prototypes", torch.full((self.num_classes, dims), math.nan))
        self._init_teacher(ema_alpha)

    def augment(self, inputs: Tensor) -> Tensor:
        """x_aug = beta * normalize(A(x)) + (1 - beta) * x for normalized inputs."""
        preprocessor = self.data_preprocessor
        if getattr(preprocessor, "_enable_normalize", False):
            mean, std = preprocessor.mean.to(inputs), preprocessor.std.to(inputs)
        else:
            mean, std = torch.zeros_like(inputs[0, :, :1, :1]), torch.ones_like(inputs[0, :, :1, :1])
        augmented = (photometric_augment((inputs * std + mean) / 255) * 255 - mean) / std
        return self.aug_beta * augmented + (1 - self.aug_beta) * inputs

    @torch.no_grad()
    def synthetic_labels(self, batch) -> Tensor:
        """The synthetic images' labels: their own where `labeled`, else the teacher's (filtered) pseudo-labels."""
        own = labels(batch.synthetic_samples).to(batch.synthetic.device)
        labeled = torch.tensor([bool(s.metainfo.get("labeled")) for s in batch.synthetic_samples], device=own.device)
        if labeled.all():
            return own
        logits, features = self.teacher_forward(batch.synthetic)
        pseudo = self.to_image_size(logits, batch.synthetic).argmax(1)
        if self.pseudo_labels:
            kept = prototype_agreement(logits.argmax(1), features, self.prototypes) != IGNORE
            kept = resize(kept[:, None].float(), size=pseudo.shape[1:], mode="nearest")[:, 0].bool()
            pseudo = torch.where(kept, pseudo, torch.full_like(pseudo, IGNORE))
        return torch.where(labeled[:, None, None], own, pseudo)

    def loss(self, inputs: Tensor, data_samples) -> dict:
        batch = split_batch(inputs, data_samples)
        source, source_label = batch.source, labels(batch.source_samples).to(inputs.device)
        source_aug = self.augment(source)
        teacher_source, teacher_features = self.teacher_forward(source)
        if self.pseudo_labels:
            small = resize(source_label[:, None].float(), size=teacher_features.shape[2:], mode="nearest")[:, 0]
            self.prototypes.copy_(update_prototypes(self.prototypes, teacher_features, small.long(),
                                                    self.proto_momentum))  # fmt: skip
        clean, augmented, teacher_clean = source, source_aug, teacher_source
        if self.mix:
            if len(batch.synthetic) != len(source):
                raise ValueError(f"{len(source)} source images but {len(batch.synthetic)} synthetic ones")
            mixed, mixed_label, _ = class_mix(source_aug, source_label, batch.synthetic, self.synthetic_labels(batch))
            clean, augmented = torch.cat([source, mixed]), torch.cat([source_aug, self.augment(mixed)])
            teacher_clean = torch.cat([teacher_source, self.teacher_forward(mixed)[0]])
        student_clean, student_aug = self.student_logits(clean), self.student_logits(augmented)
        teacher_aug, _ = self.teacher_forward(augmented)
        n = len(source)
        losses = add_prefix(self.decode_head.loss_by_feat(student_clean[:n], batch.source_samples), "decode")
        if self.mix:
            losses["loss_mix"] = pixel_ce(student_clean[n:], mixed_label)
        losses["loss_kd"] = self.kd_weight * symmetric_kd(teacher_clean, teacher_aug, student_clean, student_aug)
        return losses
