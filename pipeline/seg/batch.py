"""Segmentation's side of the paired-batch contract (`pipeline.paired`): the ignore index and the labels of a batch."""

from __future__ import annotations

import torch
from mmseg.structures import SegDataSample
from torch import Tensor

IGNORE = 255


def labels(samples: list[SegDataSample]) -> Tensor:
    """The samples' ground truth as an N x H x W long tensor (255 = ignore)."""
    return torch.stack([sample.gt_sem_seg.data[0] for sample in samples]).long()
