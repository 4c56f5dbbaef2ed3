"""`mt`: the masked mean teacher of DRSF's released code (its MIC branch) as an mmdet detector, so that synthetic
images need no boxes of their own (txt2img images can be used).

Per batch (B source then B synthetic images, `pipeline.paired`):
- the supervised Faster R-CNN losses on the source images;
- the EMA teacher (`pipeline.adapt.teacher`, momentum `ema_alpha`, DRSF's config: 0.9) detects on each synthetic
  image; its boxes with score >= `score_threshold` (0.8) become pseudo-boxes (`select_pseudo_boxes`);
- the student sees the synthetic image with random `mask_block`-pixel blocks (32) zeroed with probability
  `mask_ratio` (0.5) in normalized space, and is trained towards the pseudo-boxes with the classification losses
  only (`loss_pseudo_rpn_cls`, `loss_pseudo_cls`, times `pseudo_weight`): as in the released code, the box
  regression of pseudo-boxes is not trained (weight 0);
- `pseudo_boxes`: the mean number of pseudo-boxes per synthetic image, a metric.
Not reproduced from the released code: its colour jitter and blur of the masked image, and its weighting of the
pseudo-label CE by the teacher's max softmax probability (per-box weights need a custom box head); the synthetic
images' own boxes are never read (as there).
"""

from __future__ import annotations

import copy

import torch
from mmdet.models.detectors import FasterRCNN
from mmdet.registry import MODELS
from mmengine.structures import InstanceData
from torch import Tensor

from pipeline.adapt.teacher import EMATeacher, block_mask
from pipeline.paired import split_batch

CLASSIFICATION = {"loss_rpn_cls": "loss_pseudo_rpn_cls", "loss_cls": "loss_pseudo_cls"}


def select_pseudo_boxes(predictions: InstanceData, threshold: float) -> InstanceData:
    """The predicted instances whose score is at least `threshold`, as ground-truth instances (bboxes, labels)."""
    keep = predictions.scores >= threshold
    return InstanceData(bboxes=predictions.bboxes[keep], labels=predictions.labels[keep])


@MODELS.register_module()
class MeanTeacherDetector(EMATeacher, FasterRCNN):
    """FasterRCNN trained on source boxes and on a mean teacher's confident boxes on masked synthetic images."""

    STUDENT_PARTS = ("backbone", "neck", "rpn_head", "roi_head")

    def __init__(self, *args, ema_alpha: float = 0.9, score_threshold: float = 0.8, mask_block: int = 32,
                 mask_ratio: float = 0.5, pseudo_weight: float = 1.0, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.score_threshold, self.mask_block, self.mask_ratio = score_threshold, mask_block, mask_ratio
        self.pseudo_weight = pseudo_weight
        self._init_teacher(ema_alpha)

    @torch.no_grad()
    def teacher_predict(self, inputs: Tensor, data_samples: list) -> list[InstanceData]:
        """The teacher's detections on `inputs`, in the input images' coordinates (not rescaled)."""
        x = self.teacher["backbone"](inputs)
        if "neck" in self.teacher:
            x = self.teacher["neck"](x)
        proposals = self.teacher["rpn_head"].predict(x, data_samples, rescale=False)
        return self.teacher["roi_head"].predict(x, proposals, data_samples, rescale=False)

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        batch = split_batch(inputs, data_samples)
        losses = super().loss(batch.source, batch.source_samples)
        if not len(batch.synthetic):
            return losses
        pseudo_samples = copy.deepcopy(batch.synthetic_samples)
        predictions = self.teacher_predict(batch.synthetic, pseudo_samples)
        for sample, predicted in zip(pseudo_samples, predictions):
            sample.gt_instances = select_pseudo_boxes(predicted, self.score_threshold)
        n, _, height, width = batch.synthetic.shape
        masked = batch.synthetic * block_mask((n, height, width), self.mask_block, self.mask_ratio, inputs.device)
        pseudo = super().loss(masked, pseudo_samples)
        for key, name in CLASSIFICATION.items():
            value = pseudo[key]
            losses[name] = self.pseudo_weight * (sum(value) if isinstance(value, (list, tuple)) else value)
        losses["pseudo_boxes"] = torch.tensor(sum(len(s.gt_instances) for s in pseudo_samples) / n)
        return losses
