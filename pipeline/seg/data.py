"""Manifests as mmseg datasets, and the paired source + synthetic training set of `pipeline.seg.batch`.

- `ManifestSegDataset` reads one or more manifests (Parquet) instead of scanning folders; a row without a label
  (txt2img images) gets an all-ignore label from `LoadManifestLabel`, so it can share batches with labeled rows.
- `PairedDataset` indexes every (source, synthetic) pair, so MMEngine's seeded shuffling draws random pairs;
  `paired_collate` puts the B sources of a batch first and their B synthetic partners after them.
"""

from __future__ import annotations

import numpy as np
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS
from torch.utils.data import Dataset

from pipeline.labels import CLASSES, IGNORE, PALETTE
from pipeline.manifest import read_manifest
from pipeline.seg.batch import SOURCE, pseudo_domain_names

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


@DATASETS.register_module()
class PairedDataset(Dataset):
    """Every (source, synthetic) pair of two datasets: item i is source i // n and synthetic i % n (n synthetic)."""

    def __init__(self, source: dict, synthetic: dict):
        self.source, self.synthetic = DATASETS.build(source), DATASETS.build(synthetic)
        if not len(self.source) or not len(self.synthetic):
            raise ValueError(f"a paired dataset needs both halves: {len(self.source)} source and "
                             f"{len(self.synthetic)} synthetic images")  # fmt: skip
        self.metainfo = self.source.metainfo

    def __len__(self) -> int:
        return len(self.source) * len(self.synthetic)

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        return self.source[index // len(self.synthetic)], self.synthetic[index % len(self.synthetic)]


@FUNCTIONS.register_module()
def paired_collate(batch: list[tuple[dict, dict]]) -> dict:
    """B (source, synthetic) pairs -> one batch of the B sources followed by the B synthetic images."""
    return pseudo_collate([pair[0] for pair in batch] + [pair[1] for pair in batch])


def synthetic_conditions(manifest: str) -> list[str]:
    """The conditions of a synthetic manifest's rows: the pseudo-domains."""
    return sorted(set(read_manifest(manifest)["condition"]))

