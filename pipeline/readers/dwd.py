"""Diverse-Weather Dataset for single-domain generalized detection (Wu & Deng, "Single-Domain Generalized Object
Detection in Urban Scene via Cyclic-Disentangled Self-Distillation", CVPR 2022), one weather domain per root in VOC
form: `root/VOC2007/ImageSets/Main/<split>.txt` lists names, `root/VOC2007/JPEGImages/<name>.jpg` with
`root/VOC2007/Annotations/<name>.xml`; id = name. The root is a domain folder such as daytime_clear, night_sunny,
dusk_rainy, night_rainy or daytime_foggy; its name is the condition column unless the option `condition` says
otherwise. There are no pixel labels (label is null). Boxes come from every <object> (difficult ones included) of the 7
classes bus, bike, car, motor, person, rider, truck (another name is an error). VOC boxes are 1-based and inclusive,
so (xmin, ymin, xmax, ymax) becomes the 0-based pixel extent (xmin - 1, ymin - 1, xmax, ymax), clipped to the image;
a box empty after clipping is dropped. The XML's <size>, where given, must match the image, which must decode.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

from pipeline.errors import InputError
from pipeline.readers.common import Converted, Pair, Reader, check_image, convert_pairs, make_row, pair, scan, select

NAME = "dwd"
CLASSES = ("bus", "bike", "car", "motor", "person", "rider", "truck")


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int, condition: str | None) -> Converted:
    voc = root / "VOC2007"
    split_file = voc / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        there = sorted(p.stem for p in split_file.parent.glob("*.txt"))
        raise InputError(split_file, f"no list of split {split!r}", f"use one of the splits: {', '.join(there)}"
                         if there else "check that the root is a domain folder such as .../daytime_clear")  # fmt: skip
    names = split_file.read_text().split()
    images = select(scan(voc / "JPEGImages", ".jpg"), names, split_file)
    pairs = pair(images, voc / "Annotations", ".xml")[:limit]
    convert = partial(row, split=split, condition=condition or root.name)
    return Converted(convert_pairs(convert, pairs, workers, NAME, split), [])


def row(item: Pair, split: str, condition: str) -> dict:
    """The manifest row of one image and its annotation."""
    image = check_image(item.image)
    return make_row(NAME, split, item, image, label=None, boxes=boxes(item.label, image.size), city=NAME,
                    condition=condition)  # fmt: skip


def boxes(xml: Path, size: tuple[int, int]) -> list[dict]:
    """The boxes of a VOC annotation in 0-based pixel coordinates, clipped to an image of `size`."""
    try:
        annotation = ET.parse(xml).getroot()
        declared = annotation.find("size")
        if declared is not None:
            declared = (int(float(declared.findtext("width"))), int(float(declared.findtext("height"))))
        found = []
        for i, obj in enumerate(annotation.iter("object")):
            name = (obj.findtext("name") or "").strip()
            if name not in CLASSES:
                raise InputError(xml, f"object {i} has class {name!r}, not one of {', '.join(CLASSES)}",
                                 "use the Diverse-Weather annotations, or remove the object")  # fmt: skip
            box = obj.find("bndbox")
            x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            found.append({"label": name, "x1": max(x1 - 1, 0.0), "y1": max(y1 - 1, 0.0), "x2": min(x2, size[0]),
                          "y2": min(y2, size[1])})  # fmt: skip
    except (ET.ParseError, AttributeError, TypeError, ValueError) as error:
        raise InputError(xml, f"not a VOC annotation that can be read ({error})",
                         "re-download or re-extract it") from error  # fmt: skip
    if declared is not None and declared != tuple(size):
        raise InputError(xml, f"annotation says {declared[0]}x{declared[1]} but the image is {size[0]}x{size[1]}",
                         "re-extract the annotation and its image, or remove both")  # fmt: skip
    return [b for b in found if b["x2"] > b["x1"] and b["y2"] > b["y1"]]


READER = Reader(read, expects="VOC2007/ (one Diverse-Weather domain folder, e.g. daytime_clear)",
                options={"condition": None})  # fmt: skip
