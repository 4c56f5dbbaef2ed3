"""Score tables and metrics (pipeline.tables): target means per seed, mean and population std over seeds, the
metrics.json nesting, on a table whose answers are worked out by hand; and the same convention in everything the
`evaluate` stage writes (metrics.json, scores.csv, per_class.csv, domains.csv of both tasks), scored by stubs."""

from __future__ import annotations

import itertools
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import tables
from pipeline.manifest import write_manifest


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


SEG = {  # (method, seed, domain) -> mIoU; aAcc is mIoU + 40
    ("source", 0, "src"): 50.0, ("source", 0, "fog"): 10.0, ("source", 0, "night"): 30.0,
    ("source", 1, "src"): 53.0, ("source", 1, "fog"): 14.0, ("source", 1, "night"): 20.0,
}  # fmt: skip
DET = {("source", 0, "src"): 40.0, ("source", 0, "fog"): 20.0, ("source", 0, "night"): 0.0,
       ("source", 1, "src"): 44.0, ("source", 1, "fog"): 21.0, ("source", 1, "night"): 9.0}  # fmt: skip


def _stub_scorer(values: dict, task: str):
    """A scorer (see `pipeline.scores.score`) that answers `values` for the run in the folder and the manifest's
    domain."""

    def scorer(folder: Path):
        method, seed = folder.name.rsplit("-s", 1)

        def evaluate(manifest: Path, batch: int, keep: int, desc: str) -> SimpleNamespace:
            value = values[(method, int(seed), manifest.parent.name)]
            scores = {"mIoU": value, "aAcc": value + 40} if task == "seg" else {"mAP50": value}
            return SimpleNamespace(scores=scores, per_class={"road" if task == "seg" else "car": value}, kept=[])

        return evaluate

    return scorer


@pytest.fixture
def evaluated(tmp_path, monkeypatch) -> Path:
    """`dgsynth score` of two seeds of source-only models per task, scored by stubs, then `dgsynth evaluate`, in a tmp
    project."""
    from stages import evaluate, score

    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({
        "data": {"source": "src", "targets": ["fog", "night"]},
        "train": {"methods": [], "seeds": [0, 1]}, "det": {"methods": [], "seeds": [0, 1]},
        "evaluate": {"split": "val", "batch": 1, "gallery": 0}}))  # fmt: skip
    for domain in ("src", "fog", "night"):
        row = dict(id="0", image="0.png", label="0.png", depth=None, boxes=[], dataset="d", domain=domain, city="x",
                   condition="clear", split="val", width=1, height=1, sha256="")  # fmt: skip
        write_manifest([row], score.DOMAINS / domain / "val.parquet")
    monkeypatch.setattr(score, "scorer", lambda task: _stub_scorer(SEG if task == "seg" else DET, task))
    for task, seed in itertools.product(("seg", "det"), (0, 1)):
        (Path("models") / task / f"source-s{seed}").mkdir(parents=True)
        (Path("models") / task / f"source-s{seed}" / "model.pth").touch()
        score.run("source", seed, task)
    assert score.run("source", 1, "det") == "wrote reports/scores/det/source-s1: mAP50 src 44.0, fog 21.0, night 9.0"
    assert evaluate.run() == "wrote reports/metrics.json: target-mean mIoU source 18.5; target-mean mAP50 source 12.5"
    return tmp_path


def test_evaluate_writes_the_convention_in_metrics_json_and_every_csv(evaluated):
    # target_mean per seed: seg (10 + 30) / 2 = 20 and (14 + 20) / 2 = 17; det (20 + 0) / 2 = 10, (21 + 9) / 2 = 15.
    # Over seeds: seg 18.5 +- 1.5 (population std of (20, 17)), not the mean of the domains' stds ((2 + 5) / 2 = 3.5)
    metrics = json.loads(Path("reports/metrics.json").read_text())
    assert metrics == {
        "seg": {"source": {"src": {"mIoU": 51.5, "aAcc": 91.5, "mIoU_std": 1.5},
                           "fog": {"mIoU": 12.0, "aAcc": 52.0, "mIoU_std": 2.0},
                           "night": {"mIoU": 25.0, "aAcc": 65.0, "mIoU_std": 5.0},
                           "target_mean": {"mIoU": 18.5, "aAcc": 58.5, "mIoU_std": 1.5}}},
        "det": {"source": {"src": {"mAP50": 42.0, "mAP50_std": 2.0},
                           "fog": {"mAP50": 20.5, "mAP50_std": 0.5},
                           "night": {"mAP50": 4.5, "mAP50_std": 4.5},
                           "target_mean": {"mAP50": 12.5, "mAP50_std": 2.5}}},
    }  # fmt: skip
    for task, score in (("seg", "mIoU"), ("det", "mAP50")):
        domains = pd.read_csv(f"reports/{task}/domains.csv")  # the same numbers as metrics.json, to 0.01
        assert list(domains.columns) == ["method", "domain", *(["mIoU", "aAcc"] if task == "seg" else [score]),
                                         f"{score}_std"]  # fmt: skip
        for row in domains.to_dict("records"):
            assert metrics[task][row["method"]][row["domain"]] == {k: v for k, v in row.items()
                                                                   if k not in ("method", "domain")}  # fmt: skip
        scores = pd.read_csv(f"reports/{task}/scores.csv")  # one row per seed, the target mean computed per seed
        means = scores[scores["domain"] == tables.TARGET_MEAN].set_index("seed")[score].to_dict()
        assert means == ({0: 20.0, 1: 17.0} if task == "seg" else {0: 10.0, 1: 15.0})
        assert len(scores) == 8 and "std" not in "".join(scores.columns)
        per_class = pd.read_csv(f"reports/{task}/per_class.csv")  # per seed and domain, never averaged
        value = "IoU" if task == "seg" else "AP50"
        truth = SEG if task == "seg" else DET
        assert {(r["method"], r["seed"], r["domain"]): r[value] for r in per_class.to_dict("records")} == truth
        assert list(Path(f"reports/{task}/gallery").iterdir()) == []  # evaluate.gallery 0: the folder, no sheets


def test_a_models_scores_come_back_exactly_with_its_kept_predictions(tmp_path):
    """What a `score` stage writes is what `evaluate` reads: floats to the bit (NaN where a class is absent), label
    maps and a detector's (boxes, scores, labels), in order, per domain; and nothing in the files depends on when."""
    from pipeline import scores

    table = pd.DataFrame({"domain": ["src", "fog"], "mIoU": [1 / 3, 2 / 7], "aAcc": [0.1 + 0.2, 90.0]})
    per_class = pd.DataFrame({"domain": ["src", "src"], "class": ["road", "sky"], "IoU": [1 / 7, float("nan")]})
    maps = [np.arange(12, dtype=np.uint8).reshape(3, 4) + i for i in range(12)]  # 12: "10" sorts before "2"
    boxes = [(np.full((n, 4), 1.5, np.float32), np.linspace(0, 1, n, dtype=np.float32), np.arange(n)) for n in (0, 3)]
    scores.write(tmp_path / "run", table, per_class, {"src": maps, "fog": boxes})
    table_back, per_class_back, kept = scores.read(tmp_path / "run")
    pd.testing.assert_frame_equal(table_back, table)
    pd.testing.assert_frame_equal(per_class_back, per_class)
    assert sorted(kept) == ["fog", "src"] and len(kept["src"]) == 12 and len(kept["fog"]) == 2
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(kept["src"], maps))
    for found, expected in zip(kept["fog"], boxes):
        assert isinstance(found, tuple) and len(found) == 3
        assert all(np.array_equal(a, b) and a.dtype == b.dtype and a.shape == b.shape for a, b in zip(found, expected))
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["run"]  # no temporary folder left beside it
    for archive in (tmp_path / "run/kept").iterdir():  # no date in the archives: scored again, the same bytes
        assert {entry.date_time for entry in zipfile.ZipFile(archive).infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_evaluate_refuses_scores_of_a_domain_no_longer_evaluated(evaluated):
    from pipeline.errors import InputError
    from stages import evaluate

    params = yaml.safe_load(Path("params.yaml").read_text())
    Path("params.yaml").write_text(yaml.safe_dump({**params, "data": {"source": "src", "targets": ["fog"]}}))
    before = Path("reports/metrics.json").read_bytes()
    with pytest.raises(InputError) as error:
        evaluate.run()
    assert error.value.where == str(Path("reports/scores/seg/source-s0")) and "night" in error.value.problem
    assert "dvc repro" in error.value.fix and Path("reports/metrics.json").read_bytes() == before
