"""One trained model's scores on the evaluated domains: what a `score` stage writes and `evaluate` gathers.

A model's folder, reports/scores/<task>/<method>-s<seed>/, holds scores.parquet (one row per domain: the task's score
columns), per_class.parquet (domain, class, the per-class score) and kept/<domain>.npz (the first `evaluate.gallery`
predictions on that domain, for the galleries: a segmentation label map, or a detector's boxes, scores and labels).
Parquet keeps the floats exact, so `evaluate` averages what the scorers measured, not a rounded copy, and the
archives carry no dates (np.savez stamps each member with the time), so a model scored again gives the same bytes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import atomic_dir

Kept = np.ndarray | tuple[np.ndarray, ...]  # one kept prediction


def split_manifest(folder: Path, split: str) -> Path:
    """A target's `<split>.parquet`, or its only manifest where it has no such split: Diverse-Weather's dusk_rainy and
    night_rainy have only a train list, which DRSF's protocol tests on."""
    only = sorted(folder.glob("*.parquet"))
    return only[0] if len(only) == 1 and not (folder / f"{split}.parquet").is_file() else folder / f"{split}.parquet"


def source_manifest(folder: Path, split: str) -> Path | None:
    """The source's `<split>.parquet`, or None where it has none (GTA5 read as one train split): its other manifests
    hold the images the models trained on, whose scores would pass for the source's validation scores."""
    path = folder / f"{split}.parquet"
    return path if path.is_file() or not any(folder.glob("*.parquet")) else None


def evaluated_manifests(domains: Path, source: str, targets: list[str], split: str) -> dict[str, Path]:
    """Domain -> the manifest a model is scored on: the source's `split` (where it has one), then every target's."""
    found = source_manifest(domains / source, split)
    return {**({source: found} if found else {}), **{d: split_manifest(domains / d, split) for d in targets}}


def score(scorer, folder: Path, manifests: dict[str, Path], batch: int, keep: int, columns: list[str], value: str,
          name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[Kept]]]:  # fmt: skip
    """The model in `folder` on every domain's manifest, with `scorer(folder)` (a task's `evaluate.scorer`): the
    scores (domain, `columns`), the per-class scores (domain, class, `value`) and the first `keep` predictions per
    domain (no entry for a domain without any)."""
    evaluate = scorer(folder) if manifests else None
    rows, classes, kept = [], [], {}
    for domain, manifest in manifests.items():
        result = evaluate(manifest, batch, keep, f"{name} on {domain}")
        rows.append(dict(domain=domain, **result.scores))
        classes += [dict(domain=domain, **{"class": c, value: v}) for c, v in result.per_class.items()]
        if result.kept:
            kept[domain] = result.kept
    per_class = pd.DataFrame(classes, columns=["domain", "class", value])
    return pd.DataFrame(rows, columns=["domain", *columns]), per_class, kept


def write(folder: Path, scores: pd.DataFrame, per_class: pd.DataFrame, kept: dict[str, list[Kept]]) -> None:
    """`folder` with a model's scores, per-class scores and kept predictions, written whole or not at all."""
    with atomic_dir(folder) as tmp:
        scores.to_parquet(tmp / "scores.parquet", index=False)
        per_class.to_parquet(tmp / "per_class.parquet", index=False)
        (tmp / "kept").mkdir()
        for domain, items in kept.items():  # key "i" for an array, "i_j" for part j of a tuple
            arrays = {}
            for i, item in enumerate(items):
                if isinstance(item, tuple):
                    arrays |= {f"{i}_{j}": part for j, part in enumerate(item)}
                else:
                    arrays[str(i)] = item
            with zipfile.ZipFile(tmp / "kept" / f"{domain}.npz", "w") as archive:  # np.load's format, no dates
                for key, array in arrays.items():
                    entry = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                    entry.compress_type = zipfile.ZIP_DEFLATED
                    with archive.open(entry, "w") as stream:
                        np.lib.format.write_array(stream, np.asarray(array), allow_pickle=False)


def read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[Kept]]]:
    """What `write` wrote in `folder`."""
    kept = {}
    for path in sorted((folder / "kept").glob("*.npz")):
        with np.load(path) as arrays:
            parts: dict[int, dict[int, np.ndarray]] = {}
            for key in arrays.files:
                i, _, j = key.partition("_")
                parts.setdefault(int(i), {})[int(j) if j else -1] = arrays[key]
        kept[path.stem] = [item[-1] if -1 in item else tuple(item[j] for j in sorted(item))
                           for _, item in sorted(parts.items())]  # fmt: skip
    return pd.read_parquet(folder / "scores.parquet"), pd.read_parquet(folder / "per_class.parquet"), kept
