"""GTA5 ("Playing for Data", Richter et al., ECCV 2016) as downloaded from the project page: `root/images/<5-digit>.png`
with `root/labels/<5-digit>.png`, id = the 5-digit number. Labels are palette PNGs whose indices (not their colours)
are Cityscapes labelIds; they map to trainIds with cityscapesScripts' table, as in DAFormer's
tools/convert_datasets/gta.py. Like that converter, a value outside the table (0..33, and 255 for -1) becomes ignore;
the data stage says how many pixels of how many files it hit. A colour (RGB) label, one of the wrong size, or one that
holds nothing but such values is an error: the wrong file, not an odd pixel. Splits: with the official
`root/split.mat` (trainIds/valIds/testIds, 1-based image numbers) "train", "val" and "test" are its lists; "all" is
every image; without split.mat "train" is every image too (the usual practice in domain generalization, where GTA5 is
only a source) and other splits are errors. A pair whose label and image sizes differ is reported (delete both files
to drop it), never resized.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from pipeline.errors import InputError
from pipeline.readers.common import (LABEL_IDS, Converted, LabelFormat, Reader, choose, pair, scan, segmentation_rows,
                                     select)

NAME = "gta5"
SPLIT_KEYS = {"train": "trainIds", "val": "valIds", "test": "testIds"}
LABELS = LabelFormat(LABEL_IDS, "GTA5 (Cityscapes labelIds)", ignore_unknown=True)


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int) -> Converted:
    images = scan(root / "images", ".png")
    ids = split_ids(root, split)
    if ids is not None:
        images = select(images, ids, root / "split.mat")
    pairs = pair(images, root / "labels", ".png")
    return segmentation_rows(NAME, split, out_dir, pairs, limit, workers, labels=LABELS, city=NAME, condition="clear")


def split_ids(root: Path, split: str) -> list[str] | None:
    """The ids of `split` from split.mat, or None for every image."""
    path = root / "split.mat"
    if split == "all" or (split == "train" and not path.is_file()):
        return None
    if not path.is_file():
        raise InputError(root, f"split {split!r} needs GTA5's split.mat, which is not in this folder",
                         "use split 'train' (every image, the usual DG practice) or 'all', or put the official "
                         "split.mat into this folder")  # fmt: skip
    key = SPLIT_KEYS[choose(split, [*SPLIT_KEYS, "all"], path, "split")]
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, scipy.io.matlab.MatReadError) as error:
        raise InputError(path, f"cannot read it ({error})", "re-download split.mat from the GTA5 page") from error
    if key not in mat:
        raise InputError(path, f"no {key} in it", "re-download split.mat from the GTA5 page")
    return [f"{int(n):05d}" for n in np.ravel(mat[key])]


READER = Reader(read, expects="images/ and labels/ (and optionally split.mat)")
