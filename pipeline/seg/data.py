"""Manifests as mmseg datasets (the paired source + synthetic set is `pipeline.paired.PairedDataset`).

`ManifestSegDataset` reads one or more manifests (Parquet) instead of scanning folders; a row without a label
(txt2img images) gets an all-ignore label from `LoadManifestLabel`, so it can share batches with labeled rows.
`SharedRandomResize`, `SharedRandomCrop` and `SharedRandomFlip` are mmcv's and mmseg's transforms that, given a
`shared` dict in the results (`PairedDataset` with `by_source`), store their random draw in it the first time and
replay it after: a source image and its synthetic rendering get one scale, one crop box and one flip.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mmcv.transforms import RandomFlip, RandomResize
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations, RandomCrop
from mmseg.registry import DATASETS, TRANSFORMS

from pipeline.labels import CLASSES, IGNORE, PALETTE
from pipeline.manifest import read_manifest
from pipeline.paired import SOURCE, pseudo_domain_names

META_KEYS = ("img_path", "seg_map_path", "ori_shape", "img_shape", "pad_shape", "scale_factor", "flip",
             "flip_direction", "reduce_zero_label", "domain", "labeled", "pseudo_domain")  # fmt: skip


@DATASETS.register_module()
class ManifestSegDataset(BaseSegDataset):
    """The rows of `manifests` as an mmseg dataset; every row is tagged with `domain` and its `pseudo_domain` index
    (0 for the source, else the position of its condition among `pseudo_domain_names` of all synthetic rows)."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE.tolist())

    def __init__(self, manifests: list[str], domain: str = SOURCE, conditions: list[str] | None = None, **kwargs):
        self.manifests, self.domain, self.conditions = list(manifests), domain, conditions
        super().__init__(ann_file="", data_prefix=dict(img_path="", seg_map_path=""), **kwargs)

    def load_data_list(self) -> list[dict]:
        names = pseudo_domain_names(self.conditions or [])
        rows = []
        for manifest in self.manifests:
            for row in read_manifest(manifest).itertuples(index=False):
                index = 0 if self.domain == SOURCE else names.index(row.condition)
                rows.append(dict(img_path=row.image, seg_map_path=row.label, label_map=None, reduce_zero_label=False,
                                 seg_fields=[], domain=self.domain, labeled=row.label is not None,
                                 pseudo_domain=index, id=row.id,
                                 source_id=getattr(row, "source_id", None)))  # fmt: skip
        return rows


@TRANSFORMS.register_module()
class LoadManifestLabel(LoadAnnotations):
    """mmseg's LoadAnnotations, with an all-ignore label for a row that has none."""

    def _load_seg_map(self, results: dict) -> None:
        if results["seg_map_path"] is not None:
            return super()._load_seg_map(results)
        results["gt_seg_map"] = np.full(results["ori_shape"], IGNORE, dtype=np.uint8)
        results["seg_fields"].append("gt_seg_map")


def shared_draw(results: dict, name: str, draw: Callable):
    """`draw()`, or with a `shared` dict in `results`: its `name` entry, drawn and stored the first time."""
    shared = results.get("shared")
    if shared is None:
        return draw()
    if name not in shared:
        shared[name] = draw()
    return shared[name]


@TRANSFORMS.register_module()
class SharedRandomResize(RandomResize):
    """mmcv's RandomResize; the scale is shared between the images of a `shared` pair."""

    def transform(self, results: dict) -> dict:
        results["scale"] = shared_draw(results, "scale", self._random_scale)
        self.resize.scale = results["scale"]
        return self.resize(results)


@TRANSFORMS.register_module()
class SharedRandomCrop(RandomCrop):
    """mmseg's RandomCrop; the box (drawn on the first image, with its label's `cat_max_ratio`) is shared."""

    def crop_bbox(self, results: dict) -> tuple:
        draw = super().crop_bbox
        return shared_draw(results, "crop", lambda: draw(results))


@TRANSFORMS.register_module()
class SharedRandomFlip(RandomFlip):
    """mmcv's RandomFlip; the direction (or no flip) is shared."""

    def _flip_on_direction(self, results: dict) -> None:
        direction = shared_draw(results, "flip", self._choose_direction)
        results["flip"], results["flip_direction"] = direction is not None, direction
        if direction is not None:
            self._flip(results)
