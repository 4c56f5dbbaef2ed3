"""The filter run: score the synthetic images against the source, apply the rules, write kept and rejected manifests.

1. The source model describes the source training images (the Gaussian is fitted to them; FreeMask's class mean
   losses come from them), the source validation images (held out: their distances show what 'typical' looks like
   in the histograms) and the synthetic images.
2. `rules.select` keeps or rejects each synthetic image. With `enabled: false` every image is kept (the scores and
   what the rules would say are still reported), which is the ablation `dvc exp run -S filter.enabled=false`.
3. `<out>/kept.parquet` and `<out>/rejected.parquet` are the synthetic manifest's rows (all its columns, paths made
   relative to `<out>`) plus the scores and, for rejected rows, the reason; FreeMask's masked labels of the kept rows
   are packed into one archive, `<out>/labels.tar` (members `<id>.png`, read through `pipeline.packed` as
   `labels.tar/<id>.png`: one file for DVC at any size), and the kept rows point to them. The folder is written
   atomically.

With a detector as the source model (`models/det/source-s<seed>`) the distances work the same; `consistency` and
`freemask` need a segmentor's predictions and are an error there (mIoU is NaN for every row).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import atomic_dir
from pipeline.errors import InputError
from pipeline.filter.features import Reference, load_reference, run_pass
from pipeline.filter.rules import FilterSettings, select
from pipeline.filter.stats import SourceGaussian
from pipeline.packed import SUFFIX, pack

SCORE_COLUMNS = ("mahalanobis", "frechet", "miou", "quantile")
LABELS = "labels"  # FreeMask's masked labels: the folder they are written to, then packed as LABELS + SUFFIX


def score(settings: FilterSettings, source_train: Path, source_val: Path | None, synthetic: Path,
          masked_dir: Path | None = None) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Scores of the synthetic rows (and the source validation rows, `set` = 'source') and a summary of the fit."""
    reference = load_reference(Path(settings.model), settings.backbone, list(settings.levels))
    check_reference(settings, reference)
    freemask = settings.freemask is not None
    source = run_pass(reference, source_train, settings.batch, "describe source train", losses=freemask)
    try:
        gaussian = SourceGaussian.fit(source.stats, source.channels, settings.shrinkage)
    except ValueError as error:
        raise InputError(source_train, f"cannot fit the source statistics: {error}",
                         "give the source more training images (2 at least), or, with a few, a fixed shrinkage "
                         "weight: filter.shrinkage: 0.5") from error  # fmt: skip
    limits = None
    if freemask:
        sums, pixels = source.class_loss.T
        with np.errstate(invalid="ignore", divide="ignore"):
            limits = np.where(pixels > 0, settings.freemask * sums / pixels, np.inf)
    parts = []
    sets = [("source", "source val", source_val, None, None),
            ("synthetic", "synthetic", synthetic, limits, masked_dir)]  # fmt: skip
    for name, desc, manifest, class_limits, folder in [s for s in sets if s[2] is not None]:
        described = run_pass(reference, manifest, settings.batch, f"describe {desc}", limits=class_limits,
                             masked_dir=folder)  # fmt: skip
        columns = dict(id=described.ids, set=name, mahalanobis=gaussian.mahalanobis(described.stats),
                       frechet=gaussian.frechet(described.stats), miou=described.miou)  # fmt: skip
        if described.masked is not None:
            columns["masked"] = described.masked
        parts.append(pd.DataFrame(columns))
    summary = dict(source_images=len(source.ids), dimensions=int(source.stats.shape[1]),
                   shrinkage=round(gaussian.shrinkage, 4))  # fmt: skip
    return pd.concat(parts, ignore_index=True), summary


def check_reference(settings: FilterSettings, reference: Reference) -> None:
    """Consistency and FreeMask need a segmentor's predictions; a detector gives the feature statistics only."""
    asked = [k for k, on in [("consistency", settings.consistency > 0), ("freemask", settings.freemask is not None)]
             if on]  # fmt: skip
    if reference.detector and asked:
        key = asked[0]
        raise InputError(f"params.yaml filter.{key}", f"{getattr(settings, key)!r} needs a segmentation model's "
                         f"predictions, but filter.model ({settings.model}) is a detector",
                         f"set filter.{key}: {'0' if key == 'consistency' else 'null'}, or filter.model to a "
                         "segmentation source model (models/seg/source-s0)")  # fmt: skip


def relocate(path: str | None, folder: Path, out: Path) -> str | None:
    """A manifest path relative to `folder`, made relative to `out` (absolute paths stay)."""
    if path is None or os.path.isabs(path):
        return path
    return os.path.relpath(folder / path, out)


def write_rows(table: pa.Table, rows: pd.DataFrame, path: Path, folder: Path, masked: bool) -> None:
    """The rows of the synthetic manifest `table` (read from `folder`) named by `rows`, with its score columns."""
    index = pd.Series(range(table.num_rows), index=table.column("id").to_pylist())
    subset = table.take(pa.array(index[rows["id"]].to_numpy(), type=pa.int64()))
    for column in ("image", "label", "depth"):
        values = [relocate(p, folder, path.parent) for p in subset.column(column).to_pylist()]
        if column == "label" and masked:
            values = [None if p is None else f"{LABELS}{SUFFIX}/{i}.png" for p, i in zip(values, rows["id"])]
        subset = subset.set_column(subset.schema.get_field_index(column), column, pa.array(values, pa.string()))
    for column in [*SCORE_COLUMNS, "reason"]:
        subset = subset.append_column(column, pa.array(rows[column].to_numpy()))
    pq.write_table(subset, path)


def apply(settings: FilterSettings, source_train: Path, source_val: Path | None, synthetic: Path,
          out: Path) -> pd.DataFrame:  # fmt: skip
    """Score, select and write `out`; return every scored row with `kept` and `reason` (and the fit summary in
    `.attrs['summary']`)."""
    table = pq.read_table(synthetic)
    if table.num_rows == 0:
        raise InputError(synthetic, "no synthetic images", "run `dvc repro synthesize` with synthesize images > 0")
    conditions = dict(zip(table.column("id").to_pylist(), table.column("condition").to_pylist()))
    with atomic_dir(out) as tmp:
        masked = settings.freemask is not None
        scores, summary = score(settings, source_train, source_val, synthetic, tmp / LABELS if masked else None)
        synthetic_rows = scores[scores["set"] == "synthetic"]
        synthetic_rows = select(synthetic_rows.assign(condition=synthetic_rows["id"].map(conditions)), settings)
        if not settings.enabled:
            synthetic_rows["kept"] = True
        kept = synthetic_rows[synthetic_rows["kept"]]
        if masked:  # the kept images' masked labels, in one archive
            (tmp / LABELS).mkdir(exist_ok=True)  # every row may be unlabeled
            for image_id in synthetic_rows.loc[~synthetic_rows["kept"], "id"]:
                (tmp / LABELS / f"{image_id}.png").unlink(missing_ok=True)
            pack(tmp / LABELS, tmp / f"{LABELS}{SUFFIX}")
            shutil.rmtree(tmp / LABELS)
        write_rows(table, kept, tmp / "kept.parquet", synthetic.parent, masked)
        write_rows(table, synthetic_rows[~synthetic_rows["kept"]], tmp / "rejected.parquet", synthetic.parent, masked)
    source_rows = scores[scores["set"] == "source"].assign(condition="source (val)", quantile=np.nan, reason="",
                                                           kept=True)  # fmt: skip
    result = pd.concat([source_rows, synthetic_rows], ignore_index=True)
    result.attrs["summary"] = summary
    return result
