"""`naive`: Faster R-CNN on source and synthetic images together, with supervised losses on the labeled ones only
(source, img2img and depth2img images carry boxes; txt2img images do not and add nothing here)."""

from __future__ import annotations

from mmdet.models.detectors import FasterRCNN
from mmdet.registry import MODELS
from torch import Tensor


def labeled_indices(data_samples: list) -> list[int]:
    """The positions of a batch's samples whose `labeled` flag is set (a sample without the flag counts as labeled)."""
    return [i for i, sample in enumerate(data_samples) if sample.metainfo.get("labeled", True)]


def labeled_part(inputs: Tensor, data_samples: list) -> tuple[Tensor, list]:
    """The images and samples of a batch that are labeled (`labeled_indices`)."""
    keep = labeled_indices(data_samples)
    return inputs[keep], [data_samples[i] for i in keep]


@MODELS.register_module()
class LabeledDetector(FasterRCNN):
    """FasterRCNN whose training loss reads the labeled samples of a batch only."""

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        return super().loss(*labeled_part(inputs, data_samples))
