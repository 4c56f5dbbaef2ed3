"""Cityscapes (Cordts et al., CVPR 2016), fine annotations, as extracted from leftImg8bit_trainvaltest.zip and
gtFine_trainvaltest.zip into one root: `root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png` with
`root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`. The id is `<city>_<seq>_<frame>` (e.g.
aachen_000000_000019), the city column the city folder. labelIds (0..33, and 255 for the license plate's -1) map to
trainIds with the official table of cityscapesScripts' labels.py (`pipeline.labels.CITYSCAPES_ID_TO_TRAIN_ID`); the
test split's labels are all void, so they convert to all-ignore.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.readers.common import LABEL_IDS, Converted, LabelFormat, Reader, pair, scan, segmentation_rows

NAME = "cityscapes"
LABELS = LabelFormat(LABEL_IDS, "Cityscapes labelIds")


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int) -> Converted:
    images = scan(root / "leftImg8bit" / split, "_leftImg8bit.png")
    pairs = pair(images, root / "gtFine" / split, "_gtFine_labelIds.png")
    return segmentation_rows(NAME, split, out_dir, pairs, limit, workers, labels=LABELS, city=city_folder,
                             condition="clear")  # fmt: skip


def city_folder(image: Path) -> str:
    """The city of an image: its folder's name."""
    return image.parent.name


READER = Reader(read, expects="leftImg8bit/ and gtFine/")
