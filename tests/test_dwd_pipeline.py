"""Detection only, from a Diverse-Weather source, through `dvc repro`: a tiny DWD tree (daytime_clear with train and
test lists, night_sunny with a test list; VOC boxes of car and bike, no pixel labels), `train.seeds: []` (no
segmentation stages), the filter on the detection source model. Checks the prompts name box classes, the synthetic
rows carry the source's boxes, the filter keeps images, and metrics.json holds detection scores only."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from test_dvc import PARAMS, _ran, _run, make_repo

SPLITS = {"daytime_clear": {"train": 6, "test": 2}, "night_sunny": {"test": 3}}
SIZE = (96, 64)  # width, height


def write_voc(root: Path, folder: str, splits: dict[str, int], seed: int) -> None:
    """A Diverse-Weather domain folder: JPEGs with a car (and every other one a bike), VOC XML boxes, split lists."""
    voc = root / folder / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        names = [f"{split}_{i:03d}" for i in range(count)]
        for i, name in enumerate(names):
            image = np.full((SIZE[1], SIZE[0], 3), 90 + 40 * seed, np.uint8)
            objects = [("car", 10 + 4 * i, 30, 40 + 4 * i, 50)] + ([("bike", 60, 20, 75, 45)] if i % 2 else [])
            for cls, x1, y1, x2, y2 in objects:
                image[y1:y2, x1:x2] = rng.integers(0, 255, 3) if cls == "car" else (20, 200, 20)
            cv2.imwrite(str(voc / "JPEGImages" / f"{name}.jpg"), image)
            boxes = "".join(f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1}</xmin>"
                            f"<ymin>{y1 + 1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
                            for c, x1, y1, x2, y2 in objects)  # fmt: skip
            (voc / "Annotations" / f"{name}.xml").write_text(
                f"<annotation><filename>{name}.jpg</filename><size><width>{SIZE[0]}</width>"
                f"<height>{SIZE[1]}</height><depth>3</depth></size>{boxes}</annotation>")  # fmt: skip
        (voc / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(names) + "\n")


def dwd_params(root: Path) -> dict:
    params = json.loads(json.dumps(PARAMS))  # a deep copy
    domains = {f"dwd_{f}": {"format": "dwd", "root": str(root / f), "splits": {s: None for s in splits}}
               for f, splits in SPLITS.items()}  # fmt: skip
    params["data"] |= {"source": "dwd_daytime_clear", "targets": ["dwd_night_sunny"], "domains": domains}
    params["train"]["seeds"] = []
    params["det"] |= {"methods": ["naive"], "naive": {}}
    params["det"]["common"] |= {"scale": list(SIZE), "crop": [64, 64]}
    params["filter"]["model"] = "models/det/source-s0"
    params["evaluate"]["split"] = "test"
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project's repo (`make_repo`) with params over a tiny DWD tree."""
    data = tmp_path_factory.mktemp("dwd")
    for seed, (folder, splits) in enumerate(SPLITS.items()):
        write_voc(data, folder, splits, seed)
    return make_repo(tmp_path_factory.mktemp("repo"), dwd_params(data))


def test_detection_only_from_a_diverse_weather_source(repo: Path):
    ran = _ran(_run(repo, "dvc", "repro"))
    assert {"prompts", "synthesize", "det-source@0", "filter", "det@naive-0", "evaluate"} <= ran
    assert not any(stage.startswith("train") for stage in ran)

    prompts = pd.read_parquet(repo / "data/prompts.parquet")
    assert {c for row in prompts["classes"] for c in row} == {"bike", "car"}
    assert set(prompts["rare_class"].dropna()) <= {"bike", "car"}
    assert prompts[["location", "scene", "condition", "seed", "source_id"]].notna().all().all()

    synthetic = pd.read_parquet(repo / "data/synthetic/train.parquet")
    source = pd.read_parquet(repo / "data/domains/dwd_daytime_clear/train.parquet").set_index("id")
    assert synthetic["label"].isna().all() and synthetic["boxes"].notna().all()
    for row in synthetic.itertuples():
        assert list(row.boxes) == list(source.loc[row.source_id, "boxes"])  # the source's, unchanged

    kept = pd.read_parquet(repo / "data/filtered/kept.parquet")
    assert 0 < len(kept) <= len(synthetic) and kept["boxes"].notna().all() and kept["miou"].isna().all()

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"det"} and set(metrics["det"]) == {"source", "naive"}
    assert set(metrics["det"]["naive"]) == {"dwd_daytime_clear", "dwd_night_sunny", "target_mean"}
    assert 0 <= metrics["det"]["source"]["dwd_night_sunny"]["mAP50"] <= 100
    assert _run(repo, "dvc", "status").strip().endswith("up to date.")
