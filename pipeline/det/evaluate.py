"""Evaluate trained detectors on domains: per-class AP and mAP at IoU 0.5 with mmdet's VOC evaluation.

A model folder (`pipeline.training.run.export`) holds the weights, the model config, the input scale and the class
names. Images are resized to the training scale and mmdet rescales the predicted boxes to the original image. AP is
mmdet's `eval_map` as its VOCMetric calls it with `eval_mode='area'` (the area under the whole precision-recall
curve, VOC 2010+, not the 11-point VOC 2007 rule) at IoU 0.5, over every box including "difficult" ones, except one
argument: VOCMetric passes `use_legacy_coordinate=True` (box widths x2 - x1 + 1, for VOC's inclusive pixel
coordinates), while manifests hold pixel-edge boxes (widths x2 - x1), so we pass False. A class without ground-truth
boxes in a domain has no AP there (NaN) and is left out of its mAP, as eval_map does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline import mm
from pipeline.det.data import ground_truth


@dataclass
class Detections:
    """One model on one domain: AP per class (NaN where a class has no boxes), mAP50 (%), and the first few images'
    detections (boxes, scores, class indices) for the gallery."""

    ap: np.ndarray
    map50: float
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    classes: list[str]

    @property
    def scores(self) -> dict[str, float]:
        return {"mAP50": self.map50}

    @property
    def per_class(self) -> dict[str, float]:
        return dict(zip(self.classes, self.ap))


def load_detector(folder: Path):
    """The detector in `folder` in eval mode, the (width, height) it works at, and its class names."""
    import pipeline.det.methods  # noqa: F401  (registers the methods' detectors)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    mm.setup()
    register_all_modules(init_default_scope=True)
    described = json.loads((folder / "config.json").read_text())
    model = MODELS.build(Config(dict(model=described["model"])).model)
    model.load_state_dict(torch.load(folder / "model.pth", map_location="cpu", weights_only=True))
    return model.eval(), tuple(described["scale"]), list(described["classes"])


def average_precision(detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      truths: list[tuple[np.ndarray, np.ndarray]], num_classes: int) -> tuple[np.ndarray, float]:  # fmt: skip
    """Per-class AP and mAP (%) at IoU 0.5 of per-image detections (boxes N x 4, scores N, labels N) against per-image
    ground truth (boxes M x 4, labels M)."""
    from mmdet.evaluation.functional import eval_map

    results = [[np.hstack([boxes[labels == c], scores[labels == c, None]]).astype(np.float32).reshape(-1, 5)
                for c in range(num_classes)] for boxes, scores, labels in detections]  # fmt: skip
    annotations = [dict(bboxes=boxes, labels=labels) for boxes, labels in truths]
    _, per_class = eval_map(results, annotations, iou_thr=0.5, eval_mode="area", use_legacy_coordinate=False,
                            nproc=1, logger="silent")  # fmt: skip
    ap = np.array([r["ap"] * 100 if r["num_gts"] > 0 else np.nan for r in per_class], dtype=float)
    return ap, float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


@torch.no_grad()
def evaluate(model, scale: tuple[int, int], classes: list[str], manifest: Path, batch: int = 8, keep: int = 0,
             desc: str = "") -> Detections:  # fmt: skip
    """Score `model` on every row of `manifest`; keep the first `keep` images' detections."""
    from mmdet.registry import DATASETS

    from pipeline.det.config import eval_pipeline

    dataset = DATASETS.build(dict(type="ManifestDetDataset", manifests=[str(manifest)], classes=classes,
                                  test_mode=True, serialize_data=False, pipeline=eval_pipeline(scale)))  # fmt: skip
    detections = []
    for data in tqdm(DataLoader(dataset, batch_size=batch, collate_fn=pseudo_collate), desc=desc, unit="batch"):
        for output in model.test_step(data):
            found = output.pred_instances
            detections.append((found.bboxes.numpy(), found.scores.numpy(), found.labels.numpy()))
    ap, map50 = average_precision(detections, ground_truth(str(manifest), classes), len(classes))
    return Detections(ap, map50, detections[:keep], classes)


def scorer(folder: Path):
    """evaluate(manifest, batch, keep, desc) -> Detections of the detector in `folder` (`pipeline.scores.score`)."""
    model, scale, classes = load_detector(folder)
    return lambda manifest, batch, keep, desc: evaluate(model, scale, classes, manifest, batch, keep, desc)
