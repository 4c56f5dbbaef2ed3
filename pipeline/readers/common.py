"""What every data-set reader shares: finding and pairing files, checking images, converting labels, building rows.

A reader scans its image folder (`scan`), keeps the images of the split (`select`), pairs each image with its label
file (`pair`) and hands the pairs to `segmentation_rows`, which reads each image's size, converts its label into a
trainId PNG under `out_dir/labels/<split>/<id>.png` (`convert_label`) and builds the manifest row (`make_row`). Every
problem with the user's files is an `InputError` that names the file and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.labels import CITYSCAPES_ID_TO_TRAIN_ID, lookup_table
from pipeline.manifest import file_sha256

LABEL_IDS = lookup_table(CITYSCAPES_ID_TO_TRAIN_ID)  # the table of every layout whose labels are Cityscapes labelIds


@dataclass(frozen=True)
class Reader:
    """One data-set layout: `read(root, split, out_dir, limit, **options)` returns its manifest rows (no `domain`)."""

    read: Callable[..., list[dict]]
    expects: str  # what the root folder holds, for the 'root not found' fix
    options: Mapping[str, object] = field(default_factory=dict)  # the allowed options, with their defaults


class Pair(NamedTuple):
    """An image and its label file (a pixel label or an annotation), under the id they share."""

    id: str
    image: Path
    label: Path


def choose(value: object, allowed: Iterable[str], where: str | Path, what: str, why: str = "") -> str:
    """`value` if it is one of `allowed`, else an InputError that lists them (and says `why`, if given)."""
    allowed = list(allowed)
    if value in allowed:
        return value
    problem = f"the {what} is required" if value is None else f"unknown {what} {value!r}"
    raise InputError(where, problem, f"set the {what} to one of: {', '.join(allowed)}" + (f" ({why})" if why else ""))


def scan(folder: Path, suffix: str) -> dict[str, Path]:
    """The files under `folder` (at any depth) whose names end with `suffix`, by id (the name without the suffix).

    Hidden files (such as macOS '._' copies) are skipped. A missing or empty folder and two files with the same id are
    errors.
    """
    if not folder.is_dir():
        parent = folder.parent
        if parent.is_dir():
            there = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
            fix = f"check the split and folder names: {parent} holds {', '.join(there) or 'no folders'}"
        else:
            fix = f"check the data set root and that the data set is fully extracted ({parent} is missing too)"
        raise InputError(folder, "folder not found", fix)
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob(f"*{suffix}")):
        if path.name.startswith(".") or not path.is_file():
            continue
        key = path.name[: -len(suffix)]
        if key in found:
            raise InputError(path, f"id {key!r} is also the id of {found[key]}", "remove one of the two files")
        found[key] = path
    if not found:
        raise InputError(folder, f"no *{suffix} files in this folder", "check that the data set is fully extracted")
    return found


def select(files: dict[str, Path], ids: Iterable[str], listed_in: Path) -> dict[str, Path]:
    """The files whose ids are listed in `listed_in` (a split file); a listed id without a file is an error."""
    ids = sorted(set(ids))
    missing = [i for i in ids if i not in files]
    if missing:
        raise InputError(listed_in, f"lists {len(missing)} images that are not there, e.g. {missing[0]!r}",
                         "re-extract the images, or use the split file that came with them")  # fmt: skip
    return {i: files[i] for i in ids}


def pair(images: dict[str, Path], label_folder: Path, suffix: str) -> list[Pair]:
    """Each image with the file of the same id under `label_folder`, sorted by id; an image without one is an error."""
    labels = scan(label_folder, suffix)
    missing = [i for i in images if i not in labels]
    if missing:
        raise InputError(images[missing[0]], f"no label {missing[0]}{suffix} under {label_folder} "
                         f"({len(missing)} of {len(images)} images have none)",
                         "extract the labels of this split there, or remove the images that have none")  # fmt: skip
    return [Pair(i, images[i], labels[i]) for i in sorted(images)]


def progress(pairs: list[Pair], fmt: str, split: str) -> Iterable[Pair]:
    """A progress bar over a split's images on stderr, shown only on a terminal."""
    return tqdm(pairs, desc=f"{fmt} {split}", unit="image", disable=None)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image's header."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(path, f"not an image that can be read ({error})",
                         "re-download or re-extract it, or remove it (and its label)") from error  # fmt: skip


def load_label(path: Path) -> np.ndarray:
    """The class ids of a one-channel label PNG: palette indices (not colours) or grey values."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "I;16", "I"):
                raise InputError(path, f"label is a {image.mode} image, not one channel of class ids",
                                 "use the label files that hold class ids, not the colour pictures")  # fmt: skip
            return np.array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(path, f"not a label image that can be read ({error})",
                         "re-download or re-extract it, or remove it and its image") from error  # fmt: skip


def convert_label(src: Path, table: np.ndarray, expected_size: tuple[int, int], dst: Path, *, image: Path, kind: str,
                  load: Callable[[Path], np.ndarray] = load_label) -> None:  # fmt: skip
    """Map the label `src` through the lookup table `table` (-1: unknown value) and write it to `dst` as trainIds.

    `kind` names the label encoding for the messages ("Cityscapes labelIds"); `load` reads the class ids.
    """
    ids = load(src).astype(np.int64)
    height, width = ids.shape
    if (width, height) != tuple(expected_size):
        raise InputError(src, f"label is {width}x{height} but image is {expected_size[0]}x{expected_size[1]}",
                         f"{src} and {image} must be the same frame: re-extract both, or delete both "
                         "to drop the pair")  # fmt: skip
    inside = (ids >= 0) & (ids < len(table))
    train = np.where(inside, table[np.where(inside, ids, 0)], -1)
    unknown = train < 0
    if unknown.any():
        values = np.unique(ids[unknown])
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise InputError(src, f"{int(unknown.sum())} pixels hold values a {kind} label cannot hold: {shown}",
                         f"this is not a {kind} label; check that the label folder is the right one")  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(train.astype(np.uint8)).save(dst)


def make_row(fmt: str, split: str, item: Pair, size: tuple[int, int], *, label: str | None, boxes: list | None,
             city: str, condition: str) -> dict:  # fmt: skip
    """A manifest row, every column but `domain`."""
    return {
        "id": item.id, "image": str(item.image), "label": label, "depth": None, "boxes": boxes, "dataset": fmt,
        "city": city, "condition": condition, "split": split, "width": size[0], "height": size[1],
        "sha256": file_sha256(item.image),
    }  # fmt: skip


def segmentation_rows(fmt: str, split: str, out_dir: Path, pairs: list[Pair], limit: int | None, *, table: np.ndarray,
                      kind: str, city: str | Callable[[Path], str], condition: str,
                      load: Callable[[Path], np.ndarray] = load_label) -> list[dict]:  # fmt: skip
    """The rows of the first `limit` pairs (all when None), converting each label to `labels/<split>/<id>.png`.

    `city` is a name, or a function of the image path for layouts with one folder per city.
    """
    rows = []
    for item in progress(pairs[:limit], fmt, split):
        size = image_size(item.image)
        label = Path("labels", split, f"{item.id}.png")
        convert_label(item.label, table, size, out_dir / label, image=item.image, kind=kind, load=load)
        rows.append(make_row(fmt, split, item, size, label=label.as_posix(), boxes=None, condition=condition,
                             city=city(item.image) if callable(city) else city))  # fmt: skip
    return rows
