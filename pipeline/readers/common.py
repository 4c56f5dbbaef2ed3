"""What every data-set reader shares: finding and pairing files, checking images, converting labels, building rows.

A reader scans its image folder (`scan`), keeps the images of the split (`select`), pairs each image with its label
file (`pair`) and hands the pairs to `segmentation_rows`, which, in `workers` processes, reads each image once for its
sha256 and decodes it to the last pixel (`check_image`), converts its label into a trainId PNG under
`out_dir/labels/<split>/<id>.png` (`convert_label`) and builds the manifest row (`make_row`). Every problem with the
user's files is an `InputError` that names the file and says how to fix it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError
from pipeline.labels import CITYSCAPES_ID_TO_TRAIN_ID, IGNORE, lookup_table
from pipeline.parallel import ordered_map

LABEL_IDS = lookup_table(CITYSCAPES_ID_TO_TRAIN_ID)  # the table of every layout whose labels are Cityscapes labelIds
REMOVE = "re-download or re-extract it, or remove it (and its label)"


@dataclass(frozen=True)
class Reader:
    """One data-set layout: `read(root, split, out_dir, limit, workers, **options)` returns its `Converted` split."""

    read: Callable[..., Converted]
    expects: str  # what the root folder holds, for the 'root not found' fix
    options: Mapping[str, object] = field(default_factory=dict)  # the allowed options, with their defaults


class Pair(NamedTuple):
    """An image and its label file (a pixel label or an annotation), under the id they share."""

    id: str
    image: Path
    label: Path


class Converted(NamedTuple):
    """A converted split: its manifest rows (every column but `domain`), sorted by id, and notes for the user."""

    rows: list[dict]
    notes: list[str]


class Checked(NamedTuple):
    """An image file that decodes: its (width, height) and the sha256 of its bytes."""

    size: tuple[int, int]
    sha256: str


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


def check_image(path: Path) -> Checked:
    """Read an image file once: the sha256 of its bytes, and its size after decoding every pixel.

    The header alone (all a size needs) looks the same in a file cut short, which would break training much later;
    an empty, truncated or corrupt file, or one that is not an image, is an InputError.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(path, f"cannot read the file ({error.strerror})", REMOVE) from error
    if not data:
        raise InputError(path, "the image file is empty (0 bytes)", REMOVE)
    return Checked(decoded_size(path, data), hashlib.sha256(data).hexdigest())


def decoded_size(path: Path, data: bytes) -> tuple[int, int]:
    """(width, height) of the image in `data` (the bytes of `path`), decoded in full.

    Pillow's `load` raises on missing data (its LOAD_TRUNCATED_IMAGES is off; nothing here turns it on), where
    OpenCV's `imdecode` may, depending on its version, return a cut JPEG with its missing part grey.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except UnidentifiedImageError as error:
        raise InputError(path, "not an image that can be read (no known image format)", REMOVE) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputError(path, f"the image does not decode: it is cut short or corrupt ({error})", REMOVE) from error


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


@dataclass(frozen=True)
class LabelFormat:
    """How a layout's label files become trainIds."""

    table: np.ndarray  # label value -> trainId; -1 for a value the format's official table does not have
    kind: str  # the encoding, for the messages ("Cityscapes labelIds")
    load: Callable[[Path], np.ndarray] = load_label  # reads the class ids
    # True: values outside the table become ignore (255) and are counted, as the reference converters do (GTA5,
    # SYNTHIA); False: they are an error. A label that holds nothing but such values is an error either way.
    ignore_unknown: bool = False


def convert_label(src: Path, fmt: LabelFormat, expected_size: tuple[int, int], dst: Path, *, image: Path) -> int:
    """Map the label `src` through `fmt`'s table, write it to `dst` as trainIds and return how many pixels held
    values outside the table (set to ignore)."""
    ids = fmt.load(src).astype(np.int64)
    height, width = ids.shape
    if (width, height) != tuple(expected_size):
        raise InputError(src, f"label is {width}x{height} but image is {expected_size[0]}x{expected_size[1]}",
                         f"{src} and {image} must be the same frame: re-extract both, or delete both "
                         "to drop the pair")  # fmt: skip
    inside = (ids >= 0) & (ids < len(fmt.table))
    train = np.where(inside, fmt.table[np.where(inside, ids, 0)], -1)
    unknown = train < 0
    count = int(unknown.sum())
    if count and (not fmt.ignore_unknown or count == unknown.size):
        values = np.unique(ids[unknown])
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        every = "all " if count == unknown.size else ""
        raise InputError(src, f"{every}{count} pixels hold values a {fmt.kind} label cannot hold: {shown}",
                         f"this is not a {fmt.kind} label; check that the label folder is the right one")  # fmt: skip
    train[unknown] = IGNORE
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(train.astype(np.uint8)).save(dst)
    return count


def make_row(fmt: str, split: str, item: Pair, image: Checked, *, label: str | None, boxes: list | None, city: str,
             condition: str) -> dict:  # fmt: skip
    """A manifest row, every column but `domain`."""
    return {
        "id": item.id, "image": str(item.image), "label": label, "depth": None, "boxes": boxes, "dataset": fmt,
        "city": city, "condition": condition, "split": split, "width": image.size[0], "height": image.size[1],
        "sha256": image.sha256,
    }  # fmt: skip


def convert_pairs(row: Callable[[Pair], object], pairs: list[Pair], workers: int, fmt: str, split: str) -> list:
    """`row(pair)` for each pair, in order, in `workers` processes, with a progress bar shown only on a terminal."""
    return ordered_map(row, pairs, workers, desc=f"{fmt} {split}", unit="image", disable=None)


def segmentation_row(item: Pair, *, fmt: str, split: str, out_dir: Path, labels: LabelFormat,
                     city: str | Callable[[Path], str], condition: str) -> tuple[dict, int]:  # fmt: skip
    """One pair's manifest row (its label converted to `labels/<split>/<id>.png`) and the number of label pixels set
    to ignore."""
    image = check_image(item.image)
    label = Path("labels", split, f"{item.id}.png")
    ignored = convert_label(item.label, labels, image.size, out_dir / label, image=item.image)
    row = make_row(fmt, split, item, image, label=label.as_posix(), boxes=None, condition=condition,
                   city=city(item.image) if callable(city) else city)  # fmt: skip
    return row, ignored


def segmentation_rows(fmt: str, split: str, out_dir: Path, pairs: list[Pair], limit: int | None, workers: int, *,
                      labels: LabelFormat, city: str | Callable[[Path], str], condition: str) -> Converted:  # fmt: skip
    """The rows of the first `limit` pairs (all when None), in `workers` processes, and a note on the label values
    set to ignore, if any.

    `city` is a name, or a module-level function of the image path for layouts with one folder per city.
    """
    row = partial(segmentation_row, fmt=fmt, split=split, out_dir=out_dir, labels=labels, city=city,
                  condition=condition)  # fmt: skip
    pairs = pairs[:limit]
    done = convert_pairs(row, pairs, workers, fmt, split)
    ignored = [(item.label, n) for item, (_, n) in zip(pairs, done) if n]
    return Converted([r for r, _ in done], [ignored_note(fmt, split, ignored)] if ignored else [])


def ignored_note(fmt: str, split: str, ignored: list[tuple[Path, int]]) -> str:
    """The one-line summary of the (label file, pixels) whose values outside the table were set to ignore."""
    pixels, files = sum(n for _, n in ignored), len(ignored)
    files_text = f"{files:,} file{'s' if files > 1 else ''}"
    return (f"{fmt} {split}: {pixels:,} pixels in {files_text} had ids outside the official table and were set to "
            f"ignore (e.g. {ignored[0][0]})")  # fmt: skip
