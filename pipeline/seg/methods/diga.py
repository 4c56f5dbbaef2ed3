"""DiGA's training (Shen et al., 2023) with the synthetic images as the translated source G(x): symmetric
distillation from a mean teacher, the cross-domain mixture and threshold-free prototype pseudo-labels.

Per batch (B source images x, then B synthetic images G(x)): the paired dataset draws each synthetic image with its
own source image (by `source_id`) through one crop and flip (`pipeline.paired`), as DiGA's translator renders x.
- x_aug = beta * A(x) + (1 - beta) * x, A = DiGA's kornia pipeline (ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.5,
  RandomGrayscale p 0.3, GaussianBlur 3x3 sigma 2 p 0.8; `pipeline.seg.methods.teacher` for the two differences);
- cross-domain mixture: ClassMix mask M from the source label, x_mix = M * x_aug + (1 - M) * G(x), labelled
  M * y + (1 - M) * y_G, with y_G the synthetic image's own label where it has one (img2img, depth2img keep the
  layout), else the teacher's pseudo-label under the threshold-free rule: a pixel is kept iff the teacher's argmax
  equals its nearest class prototype (255 otherwise, and everywhere before the prototypes exist;
  `pseudo_labels=False` keeps the bare argmax);
- prototypes (K x D buffer `prototypes`): EMA (`proto_momentum`) of per-class means of the teacher's penultimate
  features (the input of the decode head's classifier) on source pixels with their labels, collected only after
  `proto_warmup` x `iters` iterations (the teacher is then trained, not the random initial one; counted by
  `update_teacher`, so a resumed run keeps the count); a class's first mean initialises it (a class never seen is
  NaN and never nearest), since a 1e-4 EMA from zeros would take ~10^4 steps;
- `loss_kd` = kd_weight * [CE(P_T(x), S(x_mix)) + 0.5 * CE(P_T(x_mix), S(x))], the views DiGA's warm-up distils
  between (x and x_aug with `mix=False`, its DG objective), at the decode head's resolution; the student sees
  [x, x_mix] in one batch, as DiGA's does; `decode.loss_ce` the CE on x; `loss_mix` the CE on x_mix.
Deviations from DiGA's released code: `loss_mix` (DiGA's warm-up has no CE on the mixed image; here it is how the
synthetic labels and pseudo-labels train the student, as the CE on its self-training mixture does); ClassMix takes
floor(K/2) of the classes without the ignore region (DiGA always keeps the source's 255 pixels in M); one stage
(DiGA: translator, warm-up, offline pseudo-labels, centroids from 5 target passes, two self-training rounds on a
real target): the prototypes come from source pixels and the pseudo-labels are the online teacher's; an unlabeled
txt2img image is not a rendering of its source, so its mixture is not pixel-aligned.
"""

from __future__ import annotations

import math

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor

from pipeline.paired import split_batch
from pipeline.seg.batch import IGNORE, labels
from pipeline.seg.methods.teacher import MeanTeacher, class_mix, color_jitter, gaussian_blur, grayscale, pixel_ce


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


def diga_augment(images: Tensor) -> Tensor:
    """DiGA's A on N x 3 x H x W RGB images in [0, 1]."""
    x = grayscale(color_jitter(images, 0.4, 0.4, 0.2, 0.1, prob=0.5), prob=0.3)
    return gaussian_blur(x, torch.full((len(x),), 2.0), size=3, prob=0.8)


@MODELS.register_module()
class DiGASegmentor(MeanTeacher, EncoderDecoder):
    """An EncoderDecoder trained with DiGA's distillation and cross-domain mixture (see the module)."""

    def __init__(self, iters: int, ema_alpha: float = 0.999, kd_weight: float = 0.5, aug_beta: float = 0.4,
                 mix: bool = True, pseudo_labels: bool = True, proto_momentum: float = 1e-4,
                 proto_warmup: float = 0.5, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.kd_weight = kd_weight
        self.aug_beta = aug_beta
        self.mix = mix
        self.pseudo_labels = pseudo_labels
        self.proto_momentum = proto_momentum
        self.proto_start = round(proto_warmup * iters)
        head = self.decode_head
        dims = head.conv_seg.in_channels if hasattr(head, "conv_seg") else head.in_channels
        self.register_buffer("prototypes", torch.full((self.num_classes, dims), math.nan))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self._init_teacher(ema_alpha)

    def update_teacher(self, iteration: int) -> None:
        super().update_teacher(iteration)
        self.iteration.fill_(iteration + 1)

    def warmed_up(self) -> bool:
        """Whether the prototype warm-up is over (`proto_start` iterations done)."""
        return int(self.iteration) >= self.proto_start

    def augment(self, inputs: Tensor) -> Tensor:
        """x_aug = beta * A(x) + (1 - beta) * x for normalized inputs."""
        return self.aug_beta * self.photometric(inputs, diga_augment) + (1 - self.aug_beta) * inputs

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
            kept = (prototype_agreement(logits.argmax(1), features, self.prototypes) != IGNORE) & self.warmed_up()
            kept = resize(kept[:, None].float(), size=pseudo.shape[1:], mode="nearest")[:, 0].bool()
            pseudo = torch.where(kept, pseudo, torch.full_like(pseudo, IGNORE))
        return torch.where(labeled[:, None, None], own, pseudo)

    def loss(self, inputs: Tensor, data_samples) -> dict:
        batch = split_batch(inputs, data_samples)
        source, source_label = batch.source, labels(batch.source_samples).to(inputs.device)
        teacher_source, teacher_features = self.teacher_forward(source)
        if self.pseudo_labels and self.warmed_up():
            small = resize(source_label[:, None].float(), size=teacher_features.shape[2:], mode="nearest")[:, 0]
            self.prototypes.copy_(update_prototypes(self.prototypes, teacher_features, small.long(),
                                                    self.proto_momentum))  # fmt: skip
        view = self.augment(source)
        if self.mix:
            if len(batch.synthetic) != len(source):
                raise ValueError(f"{len(source)} source images but {len(batch.synthetic)} synthetic ones")
            view, mixed_label, _ = class_mix(view, source_label, batch.synthetic, self.synthetic_labels(batch))
        student = self.student_logits(torch.cat([source, view]))
        teacher_view, _ = self.teacher_forward(view)
        n = len(source)
        losses = add_prefix(self.decode_head.loss_by_feat(student[:n], batch.source_samples), "decode")
        if self.mix:
            losses["loss_mix"] = pixel_ce(student[n:], mixed_label)
        losses["loss_kd"] = self.kd_weight * symmetric_kd(teacher_source, teacher_view, student[:n], student[n:])
        return losses
