"""Manifests as mmdet datasets, the detection class set, and box conversions between manifests and mmdet.

- Classes come from the source domain: its data set's box classes where the format defines them (the world's
  `BOX_CLASSES`: bicycle, bus, car, person, rider, truck; Diverse-Weather's: bike, bus, car, motor, person, rider,
  truck), else the box names found in its training manifest; sorted. Another domain's names are
  mapped onto them by `ALIASES` (the same object under two data sets' names: bicycle/bike, motorcycle/motor); a name
  that neither matches nor has an alias in the class set is an error naming the manifest, the row and the fix.
- Boxes: manifests hold pixel-edge coordinates (a box around pixel columns 3..5 has x1=3, x2=6), which is mmdet's
  convention for `bbox` too, so the conversion only reorders fields and maps names to indices (and back).
- `ManifestDetDataset` tags every row with `domain`, `labeled` and `pseudo_domain` (`pipeline.paired`). A row with
  an empty box list is a negative (kept: no objects is an answer); a row whose boxes are null (txt2img images) is
  unlabeled: it has no instances and `labeled` is False, so supervised losses skip it.
"""

from __future__ import annotations

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from pipeline.errors import InputError
from pipeline.manifest import read_manifest
from pipeline.paired import SOURCE, pseudo_domain_names
from pipeline.readers.dwd import CLASSES as DWD_CLASSES
from pipeline.world.raster import BOX_CLASSES

DATASET_CLASSES = {"world": BOX_CLASSES, "dwd": DWD_CLASSES}
ALIASES = {"bike": "bicycle", "bicycle": "bike", "motor": "motorcycle", "motorcycle": "motor"}
META_KEYS = ("img_id", "img_path", "ori_shape", "img_shape", "scale_factor", "flip", "flip_direction", "domain",
             "labeled", "pseudo_domain")  # fmt: skip


def source_classes(manifest: str) -> list[str]:
    """The detection classes of the source manifest's data set (see the module), sorted."""
    frame = read_manifest(manifest)
    datasets = set(frame["dataset"])
    if len(datasets) == 1 and next(iter(datasets)) in DATASET_CLASSES:
        return sorted(DATASET_CLASSES[next(iter(datasets))])
    names = sorted({box["label"] for row in frame["boxes"].dropna() for box in row})
    if not names:
        raise InputError(manifest, "no boxes in the source domain", "use a source domain with boxes for detection")
    return names


def class_index(name: str, classes: list[str], where: str) -> int:
    """The index of `name` (or of its alias) in `classes`."""
    if name in classes:
        return classes.index(name)
    if ALIASES.get(name) in classes:
        return classes.index(ALIASES[name])
    raise InputError(where, f"box class {name!r} is not among the source's classes ({', '.join(classes)}) and has "
                     "no alias there", "drop the domain from data.targets, or map the name in "
                     "pipeline/det/data.py ALIASES")  # fmt: skip


def to_instances(boxes, classes: list[str], where: str) -> list[dict]:
    """Manifest boxes -> mmdet instances (bbox [x1, y1, x2, y2], bbox_label, ignore_flag)."""
    return [dict(bbox=[float(b["x1"]), float(b["y1"]), float(b["x2"]), float(b["y2"])],
                 bbox_label=class_index(b["label"], classes, where), ignore_flag=0) for b in boxes]  # fmt: skip


def to_boxes(bboxes: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[dict]:
    """mmdet boxes (N x 4) and class indices -> manifest boxes (dicts with label, x1, y1, x2, y2)."""
    return [dict(label=classes[int(c)], x1=float(b[0]), y1=float(b[1]), x2=float(b[2]), y2=float(b[3]))
            for b, c in zip(bboxes, labels)]  # fmt: skip


def ground_truth(manifest: str, classes: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row of a manifest: its boxes (N x 4, float32) and class indices (N, int64); null boxes count as none."""
    out = []
    for i, row in enumerate(read_manifest(manifest).itertuples(index=False)):
        instances = to_instances([] if row.boxes is None else row.boxes, classes, f"{manifest} row {i}")
        out.append((np.array([x["bbox"] for x in instances], np.float32).reshape(-1, 4),
                    np.array([x["bbox_label"] for x in instances], np.int64)))  # fmt: skip
    return out


@DATASETS.register_module()
class ManifestDetDataset(BaseDetDataset):
    """The rows of `manifests` as an mmdet dataset over `classes` (see the module)."""

    def __init__(self, manifests: list[str], classes: list[str], domain: str = SOURCE,
                 conditions: list[str] | None = None, **kwargs):  # fmt: skip
        self.manifests, self.domain, self.conditions = list(manifests), domain, conditions
        super().__init__(ann_file="", data_prefix=dict(img_path=""), metainfo=dict(classes=tuple(classes)), **kwargs)

    def load_data_list(self) -> list[dict]:
        names = pseudo_domain_names(self.conditions or [])
        classes = list(self.metainfo["classes"])
        rows = []
        for manifest in self.manifests:
            for i, row in enumerate(read_manifest(manifest).itertuples(index=False)):
                labeled = row.boxes is not None
                rows.append(dict(img_path=row.image, img_id=row.id, width=int(row.width), height=int(row.height),
                                 instances=to_instances(row.boxes if labeled else [], classes, f"{manifest} row {i}"),
                                 domain=self.domain, labeled=labeled,
                                 pseudo_domain=0 if self.domain == SOURCE else names.index(row.condition)))  # fmt: skip
        return rows
