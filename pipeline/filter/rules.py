"""The `filter` section of params.yaml, checked, and the rules that keep or reject each synthetic image.

- Distance band: an image is kept when its distance (`score`: mahalanobis or frechet) lies between the `band`
  quantiles of the distances of its group. The group is its condition when `per_condition` (the default): a foggy
  image is meant to be far from clear source images, so only the far tail of the fog images themselves, where broken
  generations end up, is dropped, never a whole pseudo-domain. A lower quantile above 0 also drops the nearest images,
  which add little that the source does not have.
- Consistency: a labeled image is rejected when the source model's prediction agrees with its reused label less than
  `consistency` (per-image mIoU, %); unlabeled (text-to-image) images are not judged. 0 turns the rule off.
- `freemask`: FreeMask's tolerance (a pixel's loss above tolerance x its class's mean loss on real images makes the
  pixel 'ignore'); null turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from pipeline.errors import InputError, check_keys

SCORES = ("mahalanobis", "frechet")
WHERE = "params.yaml filter"


@dataclass(frozen=True)
class FilterSettings:
    enabled: bool
    model: str  # the source-only model folder
    backbone: dict | None  # another reference backbone for the statistics (mmseg/mmdet config), or None
    levels: tuple[int, ...]  # backbone outputs whose channel statistics describe an image
    batch: int
    shrinkage: float | None  # covariance shrinkage weight in (0, 1]; None: Ledoit-Wolf's estimate
    score: str  # the distance the band applies to
    band: tuple[float, float]  # kept quantiles of the distance, within each group
    per_condition: bool
    consistency: float  # minimal per-image mIoU (%) of labeled images; 0: off
    freemask: float | None  # FreeMask's tolerance; None: off
    sheet: dict  # {images, tile_height} of the contact sheets


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_settings(cfg: dict) -> FilterSettings:
    check_keys(cfg, [f.name for f in fields(FilterSettings)], WHERE, "filter")
    low, high = cfg["band"] if isinstance(cfg["band"], list) and len(cfg["band"]) == 2 else (None, None)
    sheet = cfg["sheet"]
    sheet_ok = isinstance(sheet, dict) and set(sheet) == {"images", "tile_height"}
    sheet_ok = sheet_ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sheet.values())
    checks = [
        ("enabled", isinstance(cfg["enabled"], bool), "use true or false"),
        ("per_condition", isinstance(cfg["per_condition"], bool), "use true or false"),
        ("score", cfg["score"] in SCORES, f"use one of: {', '.join(SCORES)}"),
        ("band", low is not None and 0 <= low < high <= 1, "give [low, high] quantiles with 0 <= low < high <= 1"),
        ("batch", isinstance(cfg["batch"], int) and cfg["batch"] > 0, "use a positive integer, e.g. 16"),
        ("levels", isinstance(cfg["levels"], list) and len(cfg["levels"]) > 0, "list backbone outputs, e.g. [0, 3]"),
        ("shrinkage", cfg["shrinkage"] is None or _number(cfg["shrinkage"]) and 0 < cfg["shrinkage"] <= 1,
         "use null (Ledoit-Wolf) or (0, 1]"),
        ("consistency", _number(cfg["consistency"]) and 0 <= cfg["consistency"] < 100,
         "use a per-image mIoU in % (0: off)"),
        ("freemask", cfg["freemask"] is None or _number(cfg["freemask"]) and cfg["freemask"] > 0,
         "use null (off) or a tolerance, e.g. 1.25"),
        ("backbone", cfg["backbone"] is None or isinstance(cfg["backbone"], dict), "use null or a config mapping"),
        ("sheet", sheet_ok, "set sheet: {images: 8, tile_height: 64}"),
    ]
    for key, ok, fix in checks:
        if not ok:
            raise InputError(f"{WHERE}.{key}", f"{cfg[key]!r} is not valid", fix)
    return FilterSettings(**{k: tuple(v) if k in ("levels", "band") else v for k, v in cfg.items()})


def quantiles(distances: pd.Series, groups: pd.Series | None) -> pd.Series:
    """Each distance's quantile within its group (0 the nearest, 1 the farthest; 0.5 for a group of one)."""
    def within(values: pd.Series) -> pd.Series:
        ranks = values.rank(method="average") - 1
        return ranks / (len(values) - 1) if len(values) > 1 else ranks + 0.5

    if groups is None:
        groups = pd.Series(0, index=distances.index)
    return distances.groupby(groups, group_keys=False).apply(within)


def select(scores: pd.DataFrame, settings: FilterSettings) -> pd.DataFrame:
    """`scores` (one row per synthetic image: condition, the distances, miou) plus `quantile`, `kept` and `reason`."""
    out = scores.copy()
    groups = out["condition"] if settings.per_condition else None
    out["quantile"] = quantiles(out[settings.score], groups)
    low, high = settings.band
    reasons = [[] for _ in range(len(out))]
    for i, (q, miou) in enumerate(zip(out["quantile"], out["miou"])):
        if q > high:
            reasons[i].append(f"far: {settings.score} quantile {q:.2f} > {high:g}")
        if q < low:
            reasons[i].append(f"near: {settings.score} quantile {q:.2f} < {low:g}")
        if settings.consistency > 0 and not np.isnan(miou) and miou < settings.consistency:
            reasons[i].append(f"inconsistent: mIoU {miou:.1f} < {settings.consistency:g}")
    out["reason"] = ["; ".join(r) for r in reasons]
    out["kept"] = out["reason"] == ""
    return out
