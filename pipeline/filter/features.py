"""One pass of the reference networks over a manifest: feature statistics, and the source model's consistency.

The source-only model (an exported folder, `pipeline.seg.train.export`) reads every image at its training scale,
through the evaluation pipeline and its own data preprocessor. Its backbone levels give the feature statistics,
unless another backbone (any mmseg or mmdet backbone config) is named; that one reads the same preprocessed images.
For labeled images the same pass gives the model's prediction, scored against the label (per-image mIoU, mmseg's
nanmean over the classes in the label or the prediction), and the per-pixel cross-entropy, summed per class
(FreeMask's class means on real images) or compared with per-class limits (FreeMask's pixel filter on synthetic
images: pixels above their class's limit become 'ignore' in a copy of the label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.filter.stats import channel_stats
from pipeline.labels import CLASSES, IGNORE
from pipeline.seg.evaluate import load_model

SCOPES = ("mmseg", "mmdet")


@dataclass
class Reference:
    """The source model, the backbone whose levels are described (the model's own by default), and those levels."""

    model: torch.nn.Module
    scale: tuple[int, int]
    backbone: torch.nn.Module
    levels: list[int]


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
    if not (model_dir / "model.pth").is_file():
        raise InputError(model_dir, "no model.pth here", "run `dvc repro train-source` (or set filter.model)")
    model, scale = load_model(model_dir)
    return Reference(model, scale, model.backbone if backbone is None else build_backbone(backbone), list(levels))


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
    `limits`, write FreeMask's masked labels to `masked_dir` as <id>.png (unlabeled rows get none)."""
    from mmseg.registry import DATASETS

    from pipeline.seg.config import eval_pipeline

    dataset = DATASETS.build(dict(type="ManifestSegDataset", manifests=[str(manifest)], test_mode=True,
                                  pipeline=eval_pipeline(reference.scale)))  # fmt: skip
    model = reference.model
    ids = [dataset.get_data_info(i)["id"] for i in range(len(dataset))]
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
