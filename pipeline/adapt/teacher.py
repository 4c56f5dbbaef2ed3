"""The EMA mean teacher shared by the teacher-student methods (DIDEX, DiGA, detection's `mt`) and MIC's masking.

- `EMATeacher` is a mixin for an mmengine model (list it first): it keeps a frozen copy of the parts named in
  `STUDENT_PARTS` under `self.teacher`, always in eval mode, and updates it with `update_teacher(iteration)`. The
  teacher is a submodule, so it is saved in checkpoints and resumes with the student; its parameters never require
  grad, so the optimizer never steps them.
- The momentum follows DACS and DiGA: `min(1 - 1/(iter+1), alpha)`; at iteration 0 the teacher becomes the student.
- `EMATeacherHook` calls `update_teacher(runner.iter)` after every training iteration (runner.iter counts from 0
  there: mmengine's loop increments it after the hooks run).
- `block_mask` is MIC's (Hoyer et al., 2023) random block mask, also used by DRSF's released masked-teacher branch.
"""

from __future__ import annotations

import copy

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import Tensor, nn


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


def block_mask(shape: tuple[int, int, int], block: int, ratio: float, device=None) -> Tensor:
    """MIC's mask for N x H x W images (N x 1 x H x W): `block` x `block` patches, each 0 with probability `ratio`."""
    n, height, width = shape
    grid = torch.rand(n, 1, -(-height // block), -(-width // block), device=device) > ratio
    mask = grid.float().repeat_interleave(block, 2).repeat_interleave(block, 3)
    return mask[:, :, :height, :width]


class EMATeacher:
    """Mixin: an EMA teacher of the parts in `STUDENT_PARTS`. Call `_init_teacher(alpha)` at the end of `__init__`."""

    STUDENT_PARTS: tuple[str, ...] = ()

    def _init_teacher(self, alpha: float) -> None:
        self.ema_alpha = alpha
        parts = {name: copy.deepcopy(getattr(self, name)) for name in self.STUDENT_PARTS
                 if getattr(self, name, None) is not None}  # fmt: skip
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


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Updates the model's mean teacher (`update_teacher(runner.iter)`) after every training iteration."""

    priority = "NORMAL"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.update_teacher(runner.iter)
