"""What DIDEX's and DiGA's segmentors share: an EMA mean teacher, ClassMix masks, a pixel-weighted CE and the
photometric augmentations of their student views.

- `MeanTeacher` is `pipeline.adapt.teacher.EMATeacher` over the backbone, neck and decode head of an mmseg
  `EncoderDecoder`, with the teacher's logits and penultimate features (`teacher_forward`); the EMA update and its
  hook (`EMATeacherHook`) are the shared ones. `photometric` runs an augmentation of [0, 1] RGB images on the
  normalized inputs (de-normalized and re-normalized with the data preprocessor's mean and std).
- `color_jitter`, `grayscale`, `gaussian_blur`: kornia's ColorJitter, RandomGrayscale and GaussianBlur as DACS and
  DiGA call them, per image, with random draws from torch's global RNG; two differences: brightness is a factor
  (torchvision's; kornia adds it) and hue turns the chroma plane of YIQ (kornia turns HSV's hue).
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


YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def luma(images: Tensor) -> Tensor:
    """N x 3 x H x W RGB -> N x 1 x H x W gray (ITU-R 601)."""
    return torch.einsum("c,nchw->nhw", YIQ[0].to(images), images)[:, None]


def color_jitter(images: Tensor, brightness: float, contrast: float, saturation: float, hue: float,
                 prob: float) -> Tensor:  # fmt: skip
    """With probability `prob` per image of N x 3 x H x W RGB in [0, 1]: brightness, contrast and saturation scaled by
    factors from U(1 - s, 1 + s), the hue turned by U(-hue, hue) turns; clamped to [0, 1]."""
    n, device = len(images), images.device

    def factor(strength: float) -> Tensor:
        return torch.empty(n, 1, 1, 1, device=device).uniform_(1 - strength, 1 + strength)

    x = (images * factor(brightness)).clamp(0, 1)
    mean = luma(x).mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * factor(contrast) + mean).clamp(0, 1)
    x = ((x - luma(x)) * factor(saturation) + luma(x)).clamp(0, 1)
    angle = torch.empty(n, device=device).uniform_(-hue, hue) * 2 * torch.pi
    cos, sin, one, zero = angle.cos(), angle.sin(), torch.ones_like(angle), torch.zeros_like(angle)
    turn = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], 1).view(n, 3, 3)
    yiq = YIQ.to(x)
    x = torch.einsum("nij,njhw->nihw", torch.linalg.inv(yiq) @ turn @ yiq, x).clamp(0, 1)
    return torch.where(torch.rand(n, 1, 1, 1, device=device) < prob, x, images)


def grayscale(images: Tensor, prob: float) -> Tensor:
    """Each of N x 3 x H x W RGB images replaced by its gray with probability `prob`."""
    return torch.where(torch.rand(len(images), 1, 1, 1, device=images.device) < prob, luma(images).expand_as(images),
                       images)  # fmt: skip


def gaussian_blur(images: Tensor, sigma: Tensor, size: int, prob: float) -> Tensor:
    """Each of N x C x H x W images blurred with probability `prob` by a `size` x `size` (odd) gaussian of its
    `sigma` (N), with reflected borders."""
    n, c = images.shape[:2]
    taps = torch.arange(size, device=images.device, dtype=images.dtype) - size // 2
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma.to(images)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (C N) x size, one per channel
    pad = size // 2
    flat = F.pad(images.reshape(1, n * c, *images.shape[2:]), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    blurred = F.conv2d(flat, kernel[:, None, :, None], groups=n * c).reshape_as(images)
    return torch.where(torch.rand(n, 1, 1, 1, device=images.device) < prob, blurred, images)


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

    def photometric(self, inputs: Tensor, augment) -> Tensor:
        """`augment` (N x 3 x H x W RGB in [0, 1] -> the same) applied to normalized `inputs`."""
        preprocessor = self.data_preprocessor
        if getattr(preprocessor, "_enable_normalize", False):
            mean, std = preprocessor.mean.to(inputs), preprocessor.std.to(inputs)
        else:
            mean, std = torch.zeros_like(inputs[0, :, :1, :1]), torch.ones_like(inputs[0, :, :1, :1])
        return (augment((inputs * std + mean) / 255) * 255 - mean) / std

    def student_logits(self, inputs: Tensor) -> Tensor:
        """The student's logits at the decode head's resolution."""
        return self.decode_head(self.extract_feat(inputs))

    @staticmethod
    def to_image_size(logits: Tensor, inputs: Tensor) -> Tensor:
        return resize(logits, size=inputs.shape[2:], mode="bilinear", align_corners=False)
