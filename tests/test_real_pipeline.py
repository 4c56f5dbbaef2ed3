"""Segmentation from real data-set layouts through `dvc repro`, set up as the README's "Real data sets" says: a tiny
GTA5 source (palette labels, one train split, one label id outside the official table), Cityscapes (two city folders,
the colour, instance and polygon files beside the labelIds) and ACDC fog (a val_ref folder, colour and trainId labels
beside the labelIds) as targets, the embedded generator's image-to-image model and `det.seeds: []`. Checks every
stage runs, labels are converted to trainIds, the source without a val split is not scored, and the targets are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from test_dvc import PARAMS, _ran, _run, make_repo
from test_readers import write_grey, write_palette

COLOURS = {23: (70, 130, 180), 11: (70, 70, 70), 7: (128, 64, 128), 26: (0, 0, 142)}  # sky, building, road, car
TRAIN_IDS = {23: 10, 11: 2, 7: 0, 26: 13}


def scene(size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A street of Cityscapes labelIds (sky, building, road, a car) and its noisy picture."""
    width, height = size
    rng = np.random.default_rng(seed)
    ids = np.full((height, width), 23, np.uint8)
    ids[height // 3:] = 11
    ids[2 * height // 3:] = 7
    x = int(rng.integers(width // 8, width // 2))
    ids[height // 2: 5 * height // 6, x: x + width // 4] = 26
    picture = np.zeros((height, width, 3), np.int64)
    for label, colour in COLOURS.items():
        picture[ids == label] = colour
    picture += rng.integers(-20, 21, picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8), ids


def write_pair(image: Path, label: Path, size: tuple[int, int], seed: int, write_label=write_grey,
               unknown: bool = False) -> np.ndarray:  # fmt: skip
    """A scene's picture and its labelIds (with `unknown`, a few pixels of id 34, outside cityscapesScripts' table)."""
    picture, ids = scene(size, seed)
    ids[0, :8] = 34 if unknown else ids[0, :8]
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(image)
    write_label(label, ids)
    return picture


def write_trees(root: Path) -> None:
    """GTA5 (6 images), Cityscapes val (3 images in two cities) and ACDC fog val (2 images), with the files the real
    downloads hold beside the ones the readers use."""
    for i in range(1, 7):
        write_pair(root / f"gta5/images/{i:05d}.png", root / f"gta5/labels/{i:05d}.png", (96, 52), i, write_palette,
                   unknown=i == 1)  # fmt: skip
    for seed, name in enumerate(["frankfurt_000000_000294", "frankfurt_000001_000538", "lindau_000000_000019"]):
        city, labels = name.split("_")[0], root / "cityscapes/gtFine/val" / name.split("_")[0]
        picture = write_pair(root / f"cityscapes/leftImg8bit/val/{city}/{name}_leftImg8bit.png",
                             labels / f"{name}_gtFine_labelIds.png", (128, 64), 10 + seed)  # fmt: skip
        Image.fromarray(picture).save(labels / f"{name}_gtFine_color.png")
        Image.fromarray(np.full((64, 128), 26001, np.uint16)).save(labels / f"{name}_gtFine_instanceIds.png")
        (labels / f"{name}_gtFine_polygons.json").write_text("{}")
    for seed, name in enumerate(["GOPR0476_frame_000854", "GOPR0477_frame_000794"]):
        sequence = name.split("_")[0]
        labels = root / "acdc/gt/fog/val" / sequence
        picture = write_pair(root / f"acdc/rgb_anon/fog/val/{sequence}/{name}_rgb_anon.png",
                             labels / f"{name}_gt_labelIds.png", (96, 54), 20 + seed)  # fmt: skip
        reference = root / "acdc/rgb_anon/fog/val_ref" / sequence  # ACDC's daytime references: no labels
        reference.mkdir(parents=True)
        Image.fromarray(picture).save(reference / f"{name}_ref_rgb_anon.png")
        Image.fromarray(picture).save(labels / f"{name}_gt_labelColor.png")
        write_grey(labels / f"{name}_gt_labelTrainIds.png", np.zeros((54, 96), np.uint8))


def real_params(root: Path) -> dict:
    params = json.loads(json.dumps(PARAMS))  # a deep copy
    params["data"] |= {"source": "gta5", "targets": ["cityscapes", "acdc_fog"], "domains": {
        "gta5": {"format": "gta5", "root": str(root / "gta5"), "splits": {"train": None}},
        "cityscapes": {"format": "cityscapes", "root": str(root / "cityscapes"), "splits": {"val": None}},
        "acdc_fog": {"format": "acdc", "root": str(root / "acdc"), "splits": {"val": None},
                     "options": {"condition": "fog"}}}}  # fmt: skip
    params["synthesize"] |= {"model": "models/generator", "mode": "img2img"}
    params["det"]["seeds"] = []
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project's repo (`make_repo`) with params over the tiny trees."""
    data = tmp_path_factory.mktemp("real")
    write_trees(data)
    return make_repo(tmp_path_factory.mktemp("repo"), real_params(data))


@pytest.mark.slow
def test_segmentation_from_gta5_to_cityscapes_and_acdc(repo: Path):
    ran = _ran(_run(repo, "dvc", "repro"))
    assert {"data@gta5", "data@cityscapes", "data@acdc_fog", "prompts", "synthesize", "train-source@0", "filter",
            "train@naive-0", "evaluate", "report"} <= ran  # fmt: skip
    assert not any(stage.startswith("det") for stage in ran)

    domains = repo / "data/domains"
    gta5 = pd.read_parquet(domains / "gta5/train.parquet")
    assert list(gta5["id"]) == [f"{i:05d}" for i in range(1, 7)] and set(gta5["width"]) == {96}
    label = np.array(Image.open(domains / "gta5" / gta5["label"][0]))
    _, ids = scene((96, 52), 1)
    expected = np.vectorize(TRAIN_IDS.get)(ids)
    expected[0, :8] = 255
    assert np.array_equal(label, expected)  # palette indices (not colours) mapped to trainIds, id 34 ignored
    cityscapes = pd.read_parquet(domains / "cityscapes/val.parquet")
    assert list(cityscapes["city"]) == ["frankfurt", "frankfurt", "lindau"]
    acdc = pd.read_parquet(domains / "acdc_fog/val.parquet")
    assert list(acdc["id"]) == ["GOPR0476_frame_000854", "GOPR0477_frame_000794"] and set(acdc["condition"]) == {"fog"}

    prompts = pd.read_parquet(repo / "data/prompts.parquet")
    assert {c for row in prompts["classes"] for c in row} == {"road", "building", "sky", "car"}
    synthetic = pd.read_parquet(repo / "data/synthetic/train.parquet")
    assert set(synthetic["source_id"]) <= set(gta5["id"]) and synthetic["label"].notna().all()

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"seg"} and set(metrics["seg"]) == {"source", "naive"}
    assert set(metrics["seg"]["naive"]) == {"cityscapes", "acdc_fog", "target_mean"}  # GTA5 has no val split
    scores = [metrics["seg"]["naive"][d]["mIoU"] for d in ("cityscapes", "acdc_fog")]
    assert all(0 <= s <= 100 for s in scores)
    assert metrics["seg"]["naive"]["target_mean"]["mIoU"] == pytest.approx(sum(scores) / 2, abs=0.01)
    assert _run(repo, "dvc", "status").strip().endswith("up to date.")
