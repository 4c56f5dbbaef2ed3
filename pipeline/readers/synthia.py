"""SYNTHIA-RAND-CITYSCAPES (Ros et al., CVPR 2016): `root/RGB/<7-digit>.png` with `root/GT/LABELS/<7-digit>.png`, id =
the 7-digit number. Labels are 16-bit PNGs whose red channel holds the SYNTHIA class id (green holds the instance id);
OpenCV reads them as BGR, so the class is channel 2 (a one-channel PNG is taken as the class itself). Class ids map to
trainIds as in DAFormer's tools/convert_datasets/synthia.py (the 16 classes of the SYNTHIA->Cityscapes protocol);
the other SYNTHIA ids 0..22 (void, parking-slot, road-work, terrain, truck, train, lanemarking) are ignored, and so,
as in that converter, are ids above 22 (the data stage says how many pixels of how many files). An 8-bit colour label
(GT/COLOR instead of GT/LABELS), one of the wrong size, or one with nothing but ids above 22 is an error. The data set
has no official split: "train" (and "all") is every image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import InputError
from pipeline.labels import IGNORE, lookup_table
from pipeline.readers.common import Converted, LabelFormat, Reader, choose, pair, scan, segmentation_rows

NAME = "synthia"
TO_TRAIN_ID = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11, 17: 12, 8: 13, 19: 15, 12: 17,
               11: 18}  # fmt: skip
TABLE = lookup_table({**{i: IGNORE for i in range(23)}, **TO_TRAIN_ID})


def load(path: Path) -> np.ndarray:
    """The class ids of a SYNTHIA label: the red channel of a 16-bit PNG."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise InputError(path, "not a label image that can be read",
                         "re-download or re-extract it, or remove it and its image")  # fmt: skip
    if label.ndim == 3 and label.dtype == np.uint8:
        raise InputError(path, "label is an 8-bit colour picture, not SYNTHIA's 16-bit class ids",
                         "use the label files under GT/LABELS, not the colour pictures of GT/COLOR")  # fmt: skip
    return label if label.ndim == 2 else label[..., 2]


LABELS = LabelFormat(TABLE, "SYNTHIA class-id", load, ignore_unknown=True)


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int) -> Converted:
    choose(split, ["train", "all"], root, "split", "SYNTHIA has no official split; 'train' is every image")
    pairs = pair(scan(root / "RGB", ".png"), root / "GT" / "LABELS", ".png")
    return segmentation_rows(NAME, split, out_dir, pairs, limit, workers, labels=LABELS, city=NAME, condition="clear")


READER = Reader(read, expects="RGB/ and GT/LABELS/")
