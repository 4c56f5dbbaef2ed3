"""Readers of real data sets: each turns one split of a data set's own layout into manifest rows.

`read_split("cityscapes", root, "val", out_dir)` checks the format, the root and the options, then lets the format's
reader (one module per layout, shared work in `common`) list the images, check that each decodes, convert their labels
into trainId PNGs under `out_dir/labels/<split>/` (in `workers` processes, with the same bytes as in one) and return
one row per image with every manifest column but `domain`, sorted by id, with notes for the user.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.readers import acdc, bdd100k, cityscapes, dwd, gta5, mapillary, synthia
from pipeline.readers.common import Converted, Reader

READERS: dict[str, Reader] = {
    "cityscapes": cityscapes.READER, "gta5": gta5.READER, "synthia": synthia.READER, "acdc": acdc.READER,
    "bdd100k": bdd100k.READER, "mapillary": mapillary.READER, "dwd": dwd.READER,
}  # fmt: skip


def read_split(fmt: str, root: str | Path, split: str, out_dir: Path, limit: int | None = None, workers: int = 1,
               **options) -> Converted:  # fmt: skip
    """The manifest rows (all columns but `domain`) of one split of a data set in layout `fmt`, sorted by id, and
    notes such as the number of label pixels set to ignore.

    Pixel labels are written to `out_dir/labels/<split>/<id>.png`; `limit` keeps the first rows (None: all);
    `workers` processes share the images.
    """
    if fmt not in READERS:
        raise InputError(f"format {fmt!r}", "unknown data set format", f"use one of: {', '.join(READERS)}")
    reader = READERS[fmt]
    unknown = sorted(set(options) - set(reader.options))
    if unknown:
        raise InputError(f"options of the {fmt} reader", f"unknown option {unknown[0]!r}",
                         f"use only the options {fmt} knows: {', '.join(reader.options) or 'none'}")  # fmt: skip
    if limit is not None and limit < 0:
        raise InputError(f"{fmt} {split}", f"limit {limit} is negative", "give a limit of 0 or more, or none")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(root, "data set root not found",
                         f"set `data.domains.<name>.root` in params.yaml to the folder that holds {reader.expects}")
    return reader.read(root.resolve(), split, Path(out_dir), limit, workers, **{**reader.options, **options})
