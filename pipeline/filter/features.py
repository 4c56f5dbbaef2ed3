"""One pass of the reference networks over a manifest: feature statistics, and the source model's consistency.

The source-only model (an exported folder, `pipeline.training.run.export`) reads every image at its training scale,
through the evaluation pipeline and its own data preprocessor. Its backbone levels give the feature statistics,
unless another backbone (any mmseg or mmdet backbone config) is named; that one reads the same preprocessed images.
For labeled images the same pass gives the model's prediction, scored against the label (per-image mIoU, mmseg's
nanmean over the classes in the label or the prediction), and the per-pixel cross-entropy, summed per class
(FreeMask's class means on real images) or compared with per-class limits (FreeMask's pixel filter on synthetic
images: pixels above their class's limit become 'ignore' in a copy of the label).

The source model may be a detector (`models/det/source-s<seed>`, whose config.json names its classes): its backbone
levels give the statistics the same way; it gives no per-image consistency (mIoU is NaN) and no FreeMask masks.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.filter.stats import channel_stats
from pipeline.labels import CLASSES, IGNORE
from pipeline.manifest import read_manifest
from pipeline.seg.evaluate import load_model

SCOPES = ("mmseg", "mmdet")


@dataclass
class Reference:
    """The source model, the backbone whose levels are described (the model's own by default), those levels, and a
    detector's class names (None for a segmentor)."""

    model: torch.nn.Module
    scale: tuple[int, int]
    backbone: torch.nn.Module
    levels: list[int]
    classes: list[str] | None = None

    @property
    def detector(self) -> bool:
        return self.classes is not None


@dataclass
class Pass:
    """What one pass over a manifest gives, one entry per row in manifest order."""

    ids: list[str]
    stats: np.ndarray  # (images, sum of 2 C_l), see `channel_stats`
    channels: list[int]  # C_l of each described level
    miou: np.ndarray  # per-image mIoU (%) of the source model against the label; NaN where there is no label
    class_loss: np.ndarray  # (sum, pixels) of the pixel losses per class; zeros unless asked for
    masked: np.ndarray | None  # fraction of labeled pixels FreeMask ignored, when it ran


def build_backbone(config: dict) -> torch.nn.Module:
    """A backbone from `filter.backbone`: {scope: mmseg|mmdet, checkpoint: path or null, **its config}."""
    config = dict(config)
    scope, checkpoint = config.pop("scope", "mmseg"), config.pop("checkpoint", None)
    if scope not in SCOPES:
        raise InputError("params.yaml filter.backbone.scope", f"unknown scope {scope!r}", f"use one of {SCOPES}")
    if checkpoint and not Path(checkpoint).is_file():
        raise InputError("params.yaml filter.backbone.checkpoint", f"no file {checkpoint!r}", "give a local .pth")
    if checkpoint:
        config["init_cfg"] = dict(type="Pretrained", checkpoint=str(checkpoint))
    if scope == "mmdet":
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    try:
        backbone = MODELS.build(config)
    except (KeyError, TypeError) as error:
        fix = f"give an {scope} backbone config, e.g. {{scope: mmdet, type: ResNet, depth: 18}}"
        raise InputError("params.yaml filter.backbone", f"cannot build {config}: {error}", fix) from error
    backbone.init_weights()
    backbone.eval()  # (mmdet's ResNet.train returns None, so no chaining)
    return backbone


def load_reference(model_dir: Path, backbone: dict | None, levels: list[int]) -> Reference:
    """The exported segmentor or detector in `model_dir` (a detector's config.json names its classes)."""
    for name in ("model.pth", "config.json"):
        if not (model_dir / name).is_file():
            raise InputError(model_dir, f"no {name} here", "run `dvc repro train-source` (or `dvc repro det-source` "
                             "for models/det/...), or set filter.model to an exported source model")  # fmt: skip
    classes = json.loads((model_dir / "config.json").read_text()).get("classes")
    if classes is None:
        model, scale = load_model(model_dir)
    else:
        from pipeline.det.evaluate import load_detector

        model, scale, classes = load_detector(model_dir)
    described = model.backbone if backbone is None else build_backbone(backbone)
    return Reference(model, scale, described, list(levels), classes)


def manifest_dataset(reference: Reference, manifest: Path):
    """The rows of `manifest` through the reference model's evaluation pipeline, and their ids."""
    if reference.detector:
        from mmdet.registry import DATASETS

        from pipeline.det.config import eval_pipeline

        boxed = {box["label"] for boxes in read_manifest(manifest)["boxes"].dropna() for box in boxes}
        classes = [*reference.classes, *sorted(boxed - set(reference.classes))]  # boxes are not read: any name will do
        extra, key = dict(type="ManifestDetDataset", classes=classes), "img_id"
    else:
        from mmseg.registry import DATASETS

        from pipeline.seg.config import eval_pipeline

        extra, key = dict(type="ManifestSegDataset"), "id"
    dataset = DATASETS.build(dict(manifests=[str(manifest)], test_mode=True, pipeline=eval_pipeline(reference.scale),
                                  **extra))  # fmt: skip
    return dataset, [dataset.get_data_info(i)[key] for i in range(len(dataset))]


def per_image_miou(pred: torch.Tensor, label: torch.Tensor) -> float:
    """mIoU (%) of one prediction against its label over the classes present in either (ignore pixels excluded):
    mmseg's IoUMetric areas, from one confusion matrix (numpy's bincount)."""
    label, pred = label.numpy().astype(np.int64), pred.numpy().astype(np.int64)
    known = label != IGNORE
    k = len(CLASSES)
    confusion = np.bincount(label[known] * k + pred[known], minlength=k * k).reshape(k, k)
    intersect = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersect
    present = union > 0
    return float((intersect[present] / union[present]).mean() * 100) if present.any() else float("nan")


@torch.no_grad()
def run_pass(reference: Reference, manifest: Path, batch: int, desc: str, losses: bool = False,
             limits: np.ndarray | None = None, masked_dir: Path | None = None) -> Pass:  # fmt: skip
    """Describe every row of `manifest`; with `losses`, sum the pixel losses per class; with per-class loss
    `limits`, write FreeMask's masked labels to `masked_dir` as <id>.png (unlabeled rows get none). A detector
    reference describes the rows only (mIoU NaN)."""
    with DefaultScope.overwrite_default_scope("mmdet") if reference.detector else nullcontext():
        dataset, ids = manifest_dataset(reference, manifest)
        return _describe(reference, dataset, ids, batch, desc, losses, limits, masked_dir)


def _describe(reference: Reference, dataset, ids: list[str], batch: int, desc: str, losses: bool,
              limits: np.ndarray | None, masked_dir: Path | None) -> Pass:  # fmt: skip
    model = reference.model
    stats, mious, masked = [], [], []
    class_loss = np.zeros((len(CLASSES), 2))
    for data in tqdm(DataLoader(dataset, batch_size=batch, collate_fn=pseudo_collate), desc=desc, unit="batch"):
        data = model.data_preprocessor(data, False)
        inputs, samples = data["inputs"], data["data_samples"]
        feats = model.backbone(inputs)
        described = feats if reference.backbone is model.backbone else reference.backbone(inputs)
        if max(reference.levels) >= len(described):
            raise InputError("params.yaml filter.levels", f"{list(reference.levels)}: the backbone gives "
                             f"{len(described)} outputs", f"use indices from 0 to {len(described) - 1}")  # fmt: skip
        levels = [described[level] for level in reference.levels]
        stats.append(channel_stats(levels).numpy())
        if reference.detector:
            mious += [float("nan")] * len(samples)
            continue
        x = model.neck(feats) if model.with_neck else feats
        logits = model.decode_head.predict(x, [s.metainfo for s in samples], model.test_cfg)
        for index, sample in enumerate(model.postprocess_result(logits, samples), start=len(mious)):
            if not sample.metainfo["labeled"]:
                mious.append(float("nan"))
                masked.append(float("nan"))
                continue
            label = sample.gt_sem_seg.data[0]
            mious.append(per_image_miou(sample.pred_sem_seg.data[0], label))
            if not losses and limits is None:
                continue
            loss = F.cross_entropy(sample.seg_logits.data[None], label[None].long(), ignore_index=IGNORE,
                                   reduction="none")[0]  # fmt: skip
            known = label != IGNORE
            class_loss[:, 0] += np.bincount(label[known].numpy(), loss[known].numpy(), len(CLASSES))[: len(CLASSES)]
            class_loss[:, 1] += np.bincount(label[known].numpy(), minlength=len(CLASSES))[: len(CLASSES)]
            if limits is not None:
                limit = torch.as_tensor(limits, dtype=loss.dtype)[label.long().clamp(max=len(CLASSES) - 1)]
                drop = known & (loss > limit)
                out = np.where(drop.numpy(), IGNORE, label.numpy()).astype(np.uint8)
                masked_dir.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(masked_dir / f"{ids[index]}.png"), out)
                masked.append(float(drop.sum() / max(int(known.sum()), 1)))
    return Pass(ids, np.concatenate(stats), [level.shape[1] for level in levels], np.asarray(mious), class_loss,
                np.asarray(masked) if limits is not None else None)  # fmt: skip
