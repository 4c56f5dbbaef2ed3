"""The manifest: one Parquet table per domain and split, the only contract between stages.

One row per image. Paths are strings: relative to the folder that holds the manifest for files the pipeline wrote
there (so a domain folder can be built in a temporary place and renamed), absolute for data sets that live elsewhere;
`read_manifest` returns them resolved. `label` always points to a trainId PNG (see `pipeline.labels`); `boxes` holds the
instance boxes of the detection classes in pixel-edge coordinates: a box around pixel columns 3..5 has x1=3, x2=6.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import atomic_path
from pipeline.errors import InputError

BOX = pa.struct([("label", pa.string()), ("x1", pa.float32()), ("y1", pa.float32()), ("x2", pa.float32()),
                 ("y2", pa.float32())])  # fmt: skip

SCHEMA = pa.schema(
    [
        ("id", pa.string()),  # unique within the manifest, stable across runs
        ("image", pa.string()),
        ("label", pa.string()),  # trainId PNG, null when the domain has no pixel labels
        ("depth", pa.string()),  # uint16 PNG in centimetres, null when unknown
        ("boxes", pa.list_(BOX)),  # null when the domain has no boxes
        ("dataset", pa.string()),  # world, cityscapes, gta5, ...
        ("domain", pa.string()),  # the name in params.yaml
        ("city", pa.string()),  # city or dataset variant
        ("condition", pa.string()),  # clear, fog, rain, snow, night, dusk, ...
        ("split", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),  # of the image file's bytes
    ]
)
COLUMNS = tuple(SCHEMA.names)


def depth_centimetres(metres: np.ndarray) -> np.ndarray:
    """Metric depth as a manifest's depth PNG holds it: uint16 centimetres, clipped to the type's range."""
    return np.clip(metres * 100, 0, 65535).astype(np.uint16)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(rows: list[dict], path: str | Path, extra: pa.Schema | None = None) -> pd.DataFrame:
    """Check `rows` against the schema (plus `extra` columns, e.g. a synthetic image's prompt and seed) and write
    them atomically as Parquet; return them as a DataFrame."""
    schema = SCHEMA if extra is None else pa.unify_schemas([SCHEMA, extra])
    for i, row in enumerate(rows):
        missing = set(schema.names) - row.keys()
        if missing:
            raise InputError(f"{path} row {i}", f"missing columns {sorted(missing)}", "fill every manifest column")
    table = pa.Table.from_pylist([{c: row[c] for c in schema.names} for row in rows], schema=schema)
    ids = table.column("id").to_pandas()
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise InputError(path, f"duplicate ids, e.g. {duplicated.iloc[0]!r}", "give every row a unique id")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.to_pandas()


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest, checking that it has the schema's columns (extra columns come after them)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such manifest", "run `dvc repro data` (or `dgsynth data <domain>`) first")
    table = pq.read_table(path)
    missing = set(COLUMNS) - set(table.column_names)
    if missing:
        raise InputError(path, f"not a dgsynth manifest: missing columns {sorted(missing)}",
                         "rebuild it with `dgsynth data`")  # fmt: skip
    extra = [c for c in table.column_names if c not in COLUMNS]
    frame = table.select([*COLUMNS, *extra]).to_pandas()
    for column in ("image", "label", "depth"):  # object columns, so that a missing file is None (not NaN)
        paths = [None if pd.isna(p) else str(path.parent / p) for p in frame[column]]
        frame[column] = pd.Series(paths, index=frame.index, dtype=object)
    return frame
