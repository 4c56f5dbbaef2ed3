"""Evaluate trained segmentation models on domains: per-class IoU, mIoU and pixel accuracy through mmseg's IoUMetric.

A model folder (`pipeline.training.run.export`) holds the weights and the model config; images are resized to the
training scale, and mmseg's `predict` resizes the logits back to the label's size. IoUMetric accumulates the
intersection and union areas per class over a domain; a class with no pixels in labels or predictions of a domain
has no IoU there and is left out of its mIoU (mmseg's nanmean).
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

from pipeline.labels import CLASSES


@dataclass
class Scores:
    """One model on one domain: IoU per class (NaN where a class is absent), mIoU and pixel accuracy, in %."""

    iou: np.ndarray
    miou: float
    accuracy: float
    predictions: list[np.ndarray]  # the first few predicted label maps, for the gallery

    @property
    def scores(self) -> dict[str, float]:
        return {"mIoU": self.miou, "aAcc": self.accuracy}

    @property
    def per_class(self) -> dict[str, float]:
        return dict(zip(CLASSES, self.iou))

    @property
    def kept(self) -> list[np.ndarray]:
        return self.predictions


def load_model(folder: Path):
    """The segmentor in `folder` (config.json + model.pth) in eval mode, and the (width, height) it works at."""
    import pipeline.seg.methods  # noqa: F401  (registers the methods' segmentors)
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    described = json.loads((folder / "config.json").read_text())
    model = MODELS.build(Config(dict(model=described["model"])).model)
    model.load_state_dict(torch.load(folder / "model.pth", map_location="cpu", weights_only=True))
    return model.eval(), tuple(described["scale"])


def iou_from_areas(results: list) -> tuple[np.ndarray, float]:
    """Per-class IoU and pixel accuracy (%) from IoUMetric's per-image areas (intersect, union, pred, label)."""
    intersect, union, _, label = (torch.stack([r[i] for r in results]).sum(0).double() for i in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = (intersect / union).numpy() * 100
    return iou, float(intersect.sum() / label.sum() * 100)


@torch.no_grad()
def evaluate(model, scale: tuple[int, int], manifest: Path, batch: int = 8, keep: int = 0, desc: str = "") -> Scores:
    """Score `model` on every row of `manifest`; keep the first `keep` predictions."""
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import DATASETS

    from pipeline.seg.config import eval_pipeline

    # serialize_data=False: mmengine's serialization (for sharing rows with loader workers, which this loop has
    # none of) runs a full gc.collect() per dataset, 0.3 s each here, once per model and domain
    dataset = DATASETS.build(dict(type="ManifestSegDataset", manifests=[str(manifest)], test_mode=True,
                                  serialize_data=False, pipeline=eval_pipeline(scale)))  # fmt: skip
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=CLASSES)
    predictions = []
    for data in tqdm(DataLoader(dataset, batch_size=batch, collate_fn=pseudo_collate), desc=desc, unit="batch"):
        outputs = model.test_step(data)
        metric.process(data, [output.to_dict() for output in outputs])
        predictions += [o.pred_sem_seg.data[0].numpy().astype(np.uint8) for o in outputs][: keep - len(predictions)]
    iou, accuracy = iou_from_areas(metric.results)
    return Scores(iou, float(np.nanmean(iou)), accuracy, predictions)


def scorer(folder: Path):
    """evaluate(manifest, batch, keep, desc) -> Scores of the model in `folder` (`pipeline.scores.score`)."""
    model, scale = load_model(folder)
    return lambda manifest, batch, keep, desc: evaluate(model, scale, manifest, batch, keep, desc)
