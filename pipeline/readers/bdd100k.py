"""BDD100K semantic segmentation (Yu et al., CVPR 2020), 10K images, as extracted from bdd100k_images_10k.zip and
bdd100k_sem_seg_labels_trainval.zip into one root: `root/images/10k/<split>/<name>.jpg` with
`root/labels/sem_seg/masks/<split>/<name>.png`, id = name. The masks already hold Cityscapes trainIds (0..18, 255
ignore), so the table is the identity and any other value is an error. Splits train and val (test has no labels);
the older `seg/` layout (`*_train_id.png`) is not read. Weather is mixed, so the condition column is "unknown".
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels import CLASSES, IGNORE, lookup_table
from pipeline.readers.common import Converted, LabelFormat, Reader, pair, scan, segmentation_rows

NAME = "bdd100k"
LABELS = LabelFormat(lookup_table({**{i: i for i in range(len(CLASSES))}, IGNORE: IGNORE}), "BDD100K trainId")


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int) -> Converted:
    pairs = pair(scan(root / "images" / "10k" / split, ".jpg"), root / "labels" / "sem_seg" / "masks" / split, ".png")
    return segmentation_rows(NAME, split, out_dir, pairs, limit, workers, labels=LABELS, city=NAME,
                             condition="unknown")  # fmt: skip


READER = Reader(read, expects="images/10k/ and labels/sem_seg/masks/")
