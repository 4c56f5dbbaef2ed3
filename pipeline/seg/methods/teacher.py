"""What DIDEX's and DiGA's segmentors share: an EMA mean teacher, ClassMix masks and a pixel-weighted CE.

- `MeanTeacher` is `pipeline.adapt.teacher.EMATeacher` over the backbone, neck and decode head of an mmseg
  `EncoderDecoder`, with the teacher's logits and penultimate features (`teacher_forward`); the EMA update and its
  hook (`EMATeacherHook`) are the shared ones.
- `class_mix_mask` is ClassMix (Olsson et al., 2021) as DACS uses it: half of the classes present in each source
  label (floor(K/2), ignore excluded), the mask is every pixel of those classes; `class_mix` pastes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmseg.models.utils import resize
from torch import Tensor

from pipeline.adapt.teacher import EMATeacher
from pipeline.seg.batch import IGNORE


def class_mix_mask(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """ClassMix masks (N x H x W float, 1 = take the source pixel) for N x H x W labels: per image, floor(K/2) of
    its K present classes (ignore excluded), drawn with `generator` (a CPU generator; None = the global RNG)."""
    masks = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    for i, label in enumerate(labels):
        classes = label.unique()
        classes = classes[classes != IGNORE]
        chosen = classes[torch.randperm(len(classes), generator=generator)[: len(classes) // 2].to(classes.device)]
        masks[i] = torch.isin(label, chosen).float()
    return masks


def class_mix(source: Tensor, source_label: Tensor, other: Tensor,
              other_label: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """ClassMix of N source images (N x 3 x H x W, labels N x H x W) onto `other` images with `other_label`: the mixed
    images, their labels and the mask (1 = source pixel) from `class_mix_mask` of the source labels."""
    mask = class_mix_mask(source_label)
    mixed = mask[:, None] * source + (1 - mask[:, None]) * other
    return mixed, torch.where(mask.bool(), source_label, other_label), mask


def pixel_ce(logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy per pixel (ignore 255), times `weight` (N x H x W) if given, averaged over all pixels (as
    mmseg's CE and DAFormer's weighted CE). `logits` are resized to the labels' size first."""
    if logits.shape[2:] != labels.shape[1:]:
        logits = resize(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
    loss = F.cross_entropy(logits, labels.long(), ignore_index=IGNORE, reduction="none")
    if weight is not None:
        loss = loss * weight
    return loss.mean()


class MeanTeacher(EMATeacher):
    """Mixin for an `EncoderDecoder` subclass (list it first): an EMA teacher of the backbone, neck and decode head.

    Call `_init_teacher(alpha)` at the end of `__init__`."""

    STUDENT_PARTS = ("backbone", "neck", "decode_head")

    @torch.no_grad()
    def teacher_forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The teacher's logits at the decode head's resolution and its features: the input of the head's
        classifier (`conv_seg`, the penultimate features), or the head's input where it has no `conv_seg`."""
        x = self.teacher["backbone"](inputs)
        if "neck" in self.teacher:
            x = self.teacher["neck"](x)
        head = self.teacher["decode_head"]
        captured = []
        classifier = getattr(head, "conv_seg", None)
        handle = classifier.register_forward_pre_hook(lambda _, args: captured.append(args[0])) if classifier else None
        try:
            logits = head(x)
        finally:
            if handle is not None:
                handle.remove()
        features = captured[0] if captured else head._transform_inputs(x)
        return logits, features

    def student_logits(self, inputs: Tensor) -> Tensor:
        """The student's logits at the decode head's resolution."""
        return self.decode_head(self.extract_feat(inputs))

    @staticmethod
    def to_image_size(logits: Tensor, inputs: Tensor) -> Tensor:
        return resize(logits, size=inputs.shape[2:], mode="bilinear", align_corners=False)
