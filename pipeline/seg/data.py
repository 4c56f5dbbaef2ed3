"""Manifests as mmseg datasets (the paired source + synthetic set is `pipeline.paired.PairedDataset`).

`ManifestSegDataset` reads one or more manifests (Parquet) instead of scanning folders; a row without a label
(txt2img images) gets an all-ignore label from `LoadManifestLabel`, so it can share batches with labeled rows.
"""

from __future__ import annotations

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
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
                                 pseudo_domain=index, id=row.id))  # fmt: skip
        return rows


@TRANSFORMS.register_module()
class LoadManifestLabel(LoadAnnotations):
    """mmseg's LoadAnnotations, with an all-ignore label for a row that has none."""

    def _load_seg_map(self, results: dict) -> None:
        if results["seg_map_path"] is not None:
            return super()._load_seg_map(results)
        results["gt_seg_map"] = np.full(results["ori_shape"], IGNORE, dtype=np.uint8)
        results["seg_fields"].append("gt_seg_map")
