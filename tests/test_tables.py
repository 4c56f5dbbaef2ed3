"""Score tables and metrics (pipeline.tables): target means per seed, mean and population std over seeds, the
metrics.json nesting, on a table whose answers are worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import tables


@pytest.fixture
def scores() -> pd.DataFrame:
    rows = [("source", 0, "src", 50.0), ("source", 0, "fog", 10.0), ("source", 0, "night", 20.0),
            ("source", 1, "src", 54.0), ("source", 1, "fog", 14.0), ("source", 1, "night", 30.0),
            ("drsf", 0, "src", 40.0), ("drsf", 0, "fog", 30.0), ("drsf", 0, "night", 10.0)]  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "seed", "domain", "mAP50"])


def test_target_mean_is_per_seed_then_averaged(scores):
    table = tables.with_target_mean(scores, ["fog", "night"], ["mAP50"])
    means = table[table["domain"] == tables.TARGET_MEAN].set_index(["method", "seed"])["mAP50"]
    assert means.to_dict() == {("source", 0): 15.0, ("source", 1): 22.0, ("drsf", 0): 20.0}


def test_metrics_mean_and_population_std_over_seeds(scores):
    table = tables.with_target_mean(scores, ["fog", "night"], ["mAP50"])
    metrics = tables.metrics(table, "det", ["mAP50"])
    assert metrics["det"]["source"]["src"] == {"mAP50": 52.0, "mAP50_std": 2.0}  # std of (50, 54) with ddof=0
    assert metrics["det"]["source"]["target_mean"] == {"mAP50": 18.5, "mAP50_std": 3.5}  # (15, 22)
    assert metrics["det"]["drsf"]["night"] == {"mAP50": 10.0, "mAP50_std": 0.0}  # one seed: std 0
    assert list(metrics["det"]) == ["source", "drsf"]
    summary = tables.summary(table, ["mAP50"])  # the CSV of DVC's bar plot: the same numbers
    row = summary[(summary["method"] == "source") & (summary["domain"] == "fog")].iloc[0]
    assert (row["mAP50"], row["mAP50_std"]) == (12.0, 2.0)
