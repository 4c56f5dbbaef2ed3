"""The prompt table: DIDEX's grammar, the running class histogram, per-row seeds, determinism and bad params."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.errors import InputError
from pipeline.labels import CLASSES, IGNORE, TRAIN_ID
from pipeline.manifest import read_manifest, write_manifest
from pipeline.prompts import build_prompts, compose, read_prompts, row_seed, write_prompts
from stages.cli import app

CFG = {
    "seed": 0, "split": "train", "images": 6, "quality": "A high quality photo;", "locations": ["germany", "India"],
    "scenes": ["", "City"], "conditions": ["rain", "fog/mist", "night/darkness"], "classes": True, "balance": True,
    "rare_exclude": [], "negative": "blurry",
}  # fmt: skip
LABELS = {  # source image -> classes in its label (plus ignore pixels, which are never named)
    "s0": ["road", "sky"],
    "s1": ["road", "car", "person"],
}


def _source(folder: Path):
    rows = []
    for k, (name, classes) in enumerate(LABELS.items()):
        label = np.full((8, 8), IGNORE, np.uint8)
        for i, c in enumerate(classes):
            label[i] = TRAIN_ID[c]
        cv2.imwrite(str(folder / f"{name}.png"), label)
        rows.append({"id": name, "image": f"{name}.png", "label": f"{name}.png", "depth": None, "boxes": None,
                     "dataset": "world", "domain": "src", "city": "a", "condition": "clear", "split": "train",
                     "width": 8, "height": 8, "sha256": str(k)})  # fmt: skip
    write_manifest(rows, folder / "train.parquet")
    return read_manifest(folder / "train.parquet")


@pytest.fixture
def source(tmp_path):
    return _source(tmp_path)


def test_compose_follows_didex_and_leaves_out_empty_parts():
    prompt = compose("A high quality photo;", "germany", "City", "bus", ["road", "sky"], "fog/mist")
    assert prompt == "A high quality photo; germany; City, bus, road, sky, fog/mist"
    assert compose("A high quality photo;", "", "", None, [], "rain") == "A high quality photo; rain"


def test_row_seed_is_sha256_of_seed_and_id():
    expected = int.from_bytes(hashlib.sha256(b"7/000003").digest()[:8], "big") >> 1
    assert row_seed(7, "000003") == expected
    assert row_seed(7, "000003") != row_seed(8, "000003") != row_seed(7, "000004")
    assert 0 <= expected < 2**63


def test_rows_name_the_classes_of_their_source_label_and_the_rarest_other_class(source):
    table = build_prompts(CFG, source)
    assert list(table["id"]) == [f"{i:06d}" for i in range(6)]
    assert list(table["source_id"]) == ["s0", "s1"] * 3  # source images in order, cycled
    assert [list(c) for c in table["classes"][:2]] == [["road", "sky"], ["road", "person", "car"]]
    # Hand-computed histogram: each row adds the first class (Cityscapes order) with the fewest mentions that is not
    # in its label: sidewalk (0) for s0; building (0; sidewalk has 1) for s1; then wall and fence (still at 0).
    assert list(table["rare_class"][:4]) == ["sidewalk", "building", "wall", "fence"]
    first = table.iloc[0]
    assert first["prompt"] == compose(CFG["quality"], first["location"], first["scene"], "sidewalk", ["road", "sky"],
                                      first["condition"])  # fmt: skip
    assert first["negative_prompt"] == "blurry"
    assert first["seed"] == row_seed(0, "000000")
    assert set(table["condition"]) <= set(CFG["conditions"]) and set(table["location"]) <= set(CFG["locations"])


def test_class_mentions_approach_uniform(source):
    table = build_prompts({**CFG, "images": 400, "classes": False}, source)
    counts = Counter(table["rare_class"])
    assert set(counts) == set(CLASSES) - {"road"}  # road is in both labels, so it is never the rare class
    assert max(counts.values()) - min(counts.values()) <= 2


def test_rare_exclude_and_balance_off(source):
    excluded = build_prompts({**CFG, "rare_exclude": ["sidewalk", "building"]}, source)
    assert not set(excluded["rare_class"]) & {"sidewalk", "building"}
    plain = build_prompts({**CFG, "balance": False, "classes": False}, source)
    assert plain["rare_class"].isna().all()
    assert all(p == f"{CFG['quality']} {r.location}; " + ", ".join(x for x in (r.scene, r.condition) if x)
               for p, r in zip(plain["prompt"], plain.itertuples()))  # fmt: skip


def test_draws_of_a_row_do_not_depend_on_the_table_size(source):
    small, large = build_prompts(CFG, source), build_prompts({**CFG, "images": 20}, source)
    columns = ["id", "location", "scene", "condition", "seed", "source_id"]
    assert small[columns].equals(large[columns].head(6))


def test_same_params_give_the_same_bytes(source, tmp_path):
    for name in ("a", "b"):
        write_prompts(build_prompts(CFG, source), tmp_path / f"{name}.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = read_prompts(tmp_path / "a.parquet")
    assert list(back["classes"][1]) == ["road", "person", "car"] and back["seed"].dtype == np.int64


def _boxed(folder: Path, boxes: list | None = None):
    """A source without pixel labels (as Diverse-Weather): rows with boxes named as in the data set, or none."""
    names = [["car"], ["car", "bike", "car"], []] if boxes is None else boxes
    rows = [{"id": f"b{k}", "image": f"b{k}.jpg", "label": None, "depth": None, "dataset": "dwd", "domain": "src",
             "boxes": None if b is None else [{"label": n, "x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0} for n in b],
             "city": "dwd", "condition": "daytime_clear", "split": "train", "width": 8, "height": 8, "sha256": str(k)}
            for k, b in enumerate(names)]  # fmt: skip
    write_manifest(rows, folder / "train.parquet")
    return read_manifest(folder / "train.parquet")


def test_a_source_without_labels_names_its_box_classes(tmp_path):
    table = build_prompts({**CFG, "images": 4}, _boxed(tmp_path))
    assert [list(c) for c in table["classes"]] == [["car"], ["bike", "car"], [], ["car"]]
    # the class list is the source's box names, sorted; b0: bike (0 mentions); b1 has both: none; b2 has none: bike
    # (tied with car at 2, first in the list); b0 again: bike, the only class it lacks
    assert list(table["rare_class"].fillna("-")) == ["bike", "-", "bike", "bike"]
    assert table["prompt"][0].endswith(f"bike, car, {table['condition'][0]}")
    write_prompts(table, tmp_path / "p.parquet")  # a null rare class is written as null
    assert read_prompts(tmp_path / "p.parquet")["rare_class"].isna().tolist() == [False, True, False, False]
    with pytest.raises(InputError, match="(?s)unknown class 'sidewalk'.*classes: bike, car"):
        build_prompts({**CFG, "rare_exclude": ["sidewalk"]}, _boxed(tmp_path))


def test_a_source_without_labels_or_boxes_names_no_class(tmp_path):
    table = build_prompts(CFG, _boxed(tmp_path, [None, None]))
    assert table["classes"].map(len).eq(0).all() and table["rare_class"].isna().all()
    assert table["prompt"][0] == compose(CFG["quality"], table["location"][0], table["scene"][0], None, [],
                                         table["condition"][0])  # fmt: skip


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data/domains/src"
    folder.mkdir(parents=True)
    _source(folder)
    params = {"data": {"source": "src"}, "prompts": dict(CFG)}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    return params


def test_cli_writes_the_table(project):
    result = CliRunner().invoke(app, ["prompts"])
    assert result.exit_code == 0, result.output
    assert "6 prompts over 2 source images" in result.stdout
    assert len(read_prompts("data/prompts.parquet")) == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"conditions": []}, "prompts.conditions: must be a non-empty list"),
        ({"images": 0}, "prompts.images: 0 is not a positive integer"),
        ({"rare_exclude": ["lorry"]}, "unknown class 'lorry'"),
        ({"split": "val"}, "data/domains/src/val.parquet: no such manifest"),
    ],
)
def test_cli_bad_params_exit_2_and_write_nothing(project, change, message):
    project["prompts"].update(change)
    Path("params.yaml").write_text(yaml.safe_dump(project))
    result = CliRunner().invoke(app, ["prompts"])
    assert result.exit_code == 2
    assert message in result.output
    assert not Path("data/prompts.parquet").exists()
