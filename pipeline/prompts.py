"""DIDEX's prompt grammar: one row per image to generate, with every factor that went into its prompt.

A prompt reads `"<quality> <location>; <scene>, <rare class>, <classes present>, <condition>"`, for example
"A high quality photo; germany; City, bus, road, sidewalk, building, sky, car, fog/mist" (empty parts are left
out). Location, scene and condition are drawn by a generator seeded with (seed, row id), so a row's draws do not
depend on the others. The rare class follows DIDEX's running class histogram: every class a prompt names counts
one mention, and each row adds the least-mentioned class not already present in its source image (ties go to
the first in the class list), so class mentions approach uniform over the table.

Classes come from the source's pixel labels (the Cityscapes classes, in their order) when any source row has one;
a source with boxes only (e.g. Diverse-Weather) names its box classes instead, as the data set names them (the class
list is every box name of the source manifest, sorted); a source with neither names none and has no rare class.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import atomic_path
from pipeline.errors import InputError, flag, listed, whole
from pipeline.labels import CLASSES, IGNORE

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("negative_prompt", pa.string()),
        ("location", pa.string()),
        ("scene", pa.string()),
        ("condition", pa.string()),
        ("classes", pa.list_(pa.string())),  # the classes present in the source label (or boxes), as in the prompt
        ("rare_class", pa.string()),  # null when balancing is off, every class is present or the source has none
        ("source_domain", pa.string()),
        ("source_split", pa.string()),
        ("source_id", pa.string()),  # the manifest id of the source image (image-to-image modes start from it)
        ("seed", pa.int64()),
    ]
)
KEYS = ("seed", "images", "quality", "locations", "scenes", "conditions", "classes", "balance", "rare_exclude",
        "negative")  # fmt: skip


def row_seed(seed: int, row_id: str) -> int:
    """The seed of row `row_id`: 63 bits of sha256("<seed>/<row_id>"), the same on every machine."""
    digest = hashlib.sha256(f"{seed}/{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def compose(quality: str, location: str, scene: str, rare_class: str | None, classes: list[str], condition: str) -> str:
    """DIDEX's prompt from its parts; empty parts are left out."""
    head = f"{quality} {location};" if location else quality
    body = ", ".join(part for part in (scene, rare_class, *classes, condition) if part)
    return f"{head} {body}".strip()


def class_names(label: np.ndarray) -> list[str]:
    """The names of the classes in a trainId label, in Cityscapes order."""
    return [CLASSES[i] for i in np.unique(label) if i != IGNORE and i < len(CLASSES)]


def classes_present(label_path: str | Path) -> list[str]:
    """The names of the classes in a trainId label PNG, in Cityscapes order."""
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise InputError(label_path, "could not read this label", "rebuild the source domain with `dgsynth data`")
    return class_names(label)


def vocabulary(source: pd.DataFrame) -> list[str]:
    """The classes prompts may name: Cityscapes' when a source row has a pixel label, else the source's box names."""
    if source["label"].notna().any():
        return list(CLASSES)
    return sorted({box["label"] for boxes in source["boxes"].dropna() for box in boxes})


def row_classes(row: pd.Series, names: list[str]) -> list[str]:
    """The classes of one source row: those of its label if it has one, else those of its boxes (in `names` order)."""
    if row["label"] is not None:
        return classes_present(row["label"])
    boxed = {box["label"] for box in row["boxes"]} if row["boxes"] is not None else set()
    return [name for name in names if name in boxed]


def check(cfg: dict) -> None:
    """Raise an InputError naming the first bad `prompts` setting."""
    missing = [k for k in KEYS if k not in cfg]
    if missing:
        raise InputError("params.yaml prompts", f"no `{missing[0]}`", f"add prompts.{missing[0]} (see the README)")
    for key in ("locations", "scenes", "conditions"):
        if not isinstance(cfg[key], list) or not cfg[key]:
            raise InputError(f"params.yaml prompts.{key}", "must be a non-empty list", 'use [""] for "no choice"')
    if isinstance(cfg["images"], bool) or not isinstance(cfg["images"], int) or cfg["images"] < 1:
        raise InputError("params.yaml prompts.images", f"{cfg['images']!r} is not a positive integer", "set e.g. 600")
    whole(cfg["seed"], "prompts.seed", minimum=0)
    for key in ("classes", "balance"):
        flag(cfg[key], f"prompts.{key}")
    listed(cfg["rare_exclude"], "prompts.rare_exclude")


def check_rare_exclude(cfg: dict, names: list[str]) -> None:
    unknown = sorted(set(cfg["rare_exclude"]) - set(names))
    if unknown:
        raise InputError("params.yaml prompts.rare_exclude", f"unknown class {unknown[0]!r}",
                         f"use names of the source's classes: {', '.join(names) or 'none (it has no labels or boxes)'}")


def build_prompts(cfg: dict, source: pd.DataFrame) -> pd.DataFrame:
    """The prompt table for `cfg` (the `prompts` section), drawing source images from the manifest `source`."""
    check(cfg)
    if source.empty:
        raise InputError("source manifest", "has no images", "give the source domain's split at least one image")
    names = vocabulary(source)
    check_rare_exclude(cfg, names)
    present = {}  # source row -> classes, read once per source image
    mentions = dict.fromkeys(names, 0)
    rows = []
    for i in range(cfg["images"]):
        src = source.iloc[i % len(source)]
        if i % len(source) not in present:
            present[i % len(source)] = row_classes(src, names)
        classes = present[i % len(source)] if cfg["classes"] else []
        row_id = f"{i:06d}"
        rng = np.random.default_rng(row_seed(cfg["seed"], row_id))
        location, scene, condition = (str(rng.choice(cfg[k])) for k in ("locations", "scenes", "conditions"))
        candidates = [c for c in names if c not in cfg["rare_exclude"] and c not in present[i % len(source)]]
        rare = min(candidates, key=mentions.__getitem__) if cfg["balance"] and candidates else None
        for name in [*classes, *([rare] if rare else [])]:
            mentions[name] += 1
        rows.append({
            "id": row_id,
            "prompt": compose(cfg["quality"], location, scene, rare, classes, condition),
            "negative_prompt": cfg["negative"],
            "location": location, "scene": scene, "condition": condition, "classes": classes, "rare_class": rare,
            "source_domain": src["domain"], "source_split": src["split"], "source_id": src["id"],
            "seed": row_seed(cfg["seed"], row_id),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=SCHEMA.names)


def write_prompts(table: pd.DataFrame, path: str | Path) -> None:
    """Write the prompt table atomically; the same table gives the same bytes."""
    rows = table.astype(object).where(table.notna(), None).to_dict("records")  # pandas' string columns hold NaN
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)


def read_prompts(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no prompt table", "run `dvc repro prompts` (or `dgsynth prompts`) first")
    table = pq.read_table(path)
    missing = set(SCHEMA.names) - set(table.column_names)
    if missing:
        raise InputError(path, f"not a prompt table: missing columns {sorted(missing)}", "rebuild it with `dgsynth prompts`")
    return table.select(SCHEMA.names).to_pandas()
