"""Per condition, the first few synthetic images' prompts (data/prompts.parquet) with their filter scores
(reports/filter/scores.csv, synthetic rows), joined on the row id; either input may be absent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SCORES = ["mahalanobis", "frechet", "miou", "quantile", "kept", "reason"]


def by_condition(prompts: Path, scores: Path, count: int) -> dict[str, pd.DataFrame]:
    """condition -> its first `count` rows (id, prompt, scores), conditions sorted; empty when neither file exists."""
    frames = []
    if prompts.is_file():
        frames.append(pd.read_parquet(prompts, columns=["id", "condition", "prompt"]).astype({"id": str}))
    if scores.is_file():
        table = pd.read_csv(scores, dtype={"id": str, "reason": str})
        table = table[table["set"] == "synthetic"]
        frames.append(table[["id", "condition", *[c for c in SCORES if c in table.columns]]])
    if not frames:
        return {}
    rows = frames[0] if len(frames) == 1 else frames[0].merge(frames[1].drop(columns="condition"), on="id", how="left")
    return {condition: group.drop(columns="condition").head(count)
            for condition, group in rows.groupby("condition", sort=True)}  # fmt: skip
