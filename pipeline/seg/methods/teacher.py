"""What DIDEX's and DiGA's segmentors share: an EMA mean teacher, ClassMix masks and a pixel-weighted CE.

- `MeanTeacher` is a mixin for an mmseg `EncoderDecoder`: it keeps a frozen copy of the backbone (neck) and decode
  head under `self.teacher`, always in eval mode, and updates it with `update_teacher(iteration)`. The teacher is a
  submodule, so it is saved in checkpoints and resumes with the student; its parameters never require grad, so the
  optimizer never steps them.
- The momentum follows DACS and DiGA: `min(1 - 1/(iter+1), alpha)`; at iteration 0 the teacher becomes the student.
- `class_mix_mask` is ClassMix (Olsson et al., 2021) as DACS uses it: half of the classes present in each source
  label (floor(K/2), ignore excluded), the mask is every pixel of those classes; `class_mix` pastes them.
- `MeanTeacherHook` calls `update_teacher(runner.iter)` after every training iteration (runner.iter counts from 0
  there: mmengine's loop increments it after the hooks run).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmseg.models.utils import resize
from torch import Tensor, nn

from pipeline.seg.batch import IGNORE


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher = momentum * teacher + (1 - momentum) * student for parameters; buffers (BN statistics) copied."""
    student_params = dict(student.named_parameters())
    for name, param in teacher.named_parameters():
        param.mul_(momentum).add_(student_params[name].detach(), alpha=1 - momentum)
    student_buffers = dict(student.named_buffers())
    for name, buffer in teacher.named_buffers():
        buffer.copy_(student_buffers[name])


def ema_momentum(iteration: int, alpha: float) -> float:
    """The teacher's momentum at `iteration` (from 0): min(1 - 1/(iteration+1), alpha)."""
    return min(1 - 1 / (iteration + 1), alpha)


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


class MeanTeacher:
    """Mixin for an `EncoderDecoder` subclass (list it first): an EMA teacher of the backbone, neck and decode head.

    Call `_init_teacher(alpha)` at the end of `__init__`."""

    STUDENT_PARTS = ("backbone", "neck", "decode_head")

    def _init_teacher(self, alpha: float) -> None:
        self.ema_alpha = alpha
        parts = {name: copy.deepcopy(getattr(self, name)) for name in self.STUDENT_PARTS if hasattr(self, name)}
        self.teacher = nn.ModuleDict(parts)
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    def init_weights(self):
        """Initialise the student, then start the teacher as its copy."""
        super().init_weights()
        self._copy_to_teacher(momentum=0.0)

    def train(self, mode: bool = True):
        """Switch the student's mode; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _copy_to_teacher(self, momentum: float) -> None:
        for name, part in self.teacher.items():
            ema_update(part, getattr(self, name), momentum)

    def update_teacher(self, iteration: int) -> None:
        """One EMA step of the teacher towards the student, with the momentum of `iteration`."""
        self._copy_to_teacher(ema_momentum(iteration, self.ema_alpha))

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


@HOOKS.register_module()
class MeanTeacherHook(Hook):
    """Updates the model's mean teacher (`update_teacher(runner.iter)`) after every training iteration."""

    priority = "NORMAL"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.update_teacher(runner.iter)
