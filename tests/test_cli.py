"""The `dgsynth` command end to end on a tiny world: data, gallery, doctor, --help, and bad input (exit code 2)."""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata as metadata
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from stages.cli import app
from stages.doctor import PINS

H, W = 64, 128
TILE = 32
PARAMS = {
    "data": {
        "source": "s",
        "targets": ["t"],
        "world": {"seed": 0, "height": H, "width": W},
        "domains": {
            "s": {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 3, "val": 2}},
            "t": {"format": "world", "city": "b", "condition": "fog", "splits": {"val": 2}},
        },
    },
    "gallery": {"split": "val", "images": 2, "tile_height": TILE},
}
DOMAINS = Path("data/domains")


def dgsynth(*args: str):
    return CliRunner().invoke(app, list(args))


def write_params(params: dict) -> None:
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones included) by relative path, with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder holding only the tiny params.yaml, as the working directory."""
    monkeypatch.chdir(tmp_path)
    write_params(PARAMS)
    return tmp_path


@pytest.fixture
def built_s(project) -> dict[str, str]:
    result = dgsynth("data", "s", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "s: train 3 images, val 2 images"
    return snapshot(DOMAINS / "s")


def test_data_writes_manifests_and_pngs(built_s):
    # exactly the domain folder: no `.s.*.tmp` sibling and no temporary file inside it
    assert [p.name for p in DOMAINS.iterdir()] == ["s"]
    assert sorted(p.name for p in (DOMAINS / "s").iterdir()) == ["depth", "images", "labels", "train.parquet",
                                                                 "val.parquet"]  # fmt: skip
    assert not [name for name in built_s if Path(name).name.startswith(".")]
    for split, n in (("train", 3), ("val", 2)):
        frame = pd.read_parquet(DOMAINS / "s" / f"{split}.parquet")
        assert len(frame) == n
        assert frame["id"].tolist() == [f"s-{split}-{i:05d}" for i in range(n)]
        assert set(frame["domain"]) == {"s"} and set(frame["split"]) == {split}
        assert set(frame["dataset"]) == {"world"} and set(frame["city"]) == {"a"} and set(frame["condition"]) == {
            "clear"}  # fmt: skip
        assert set(frame["width"]) == {W} and set(frame["height"]) == {H}
        for row in frame.itertuples():
            assert row.image == f"images/{split}/{row.id[-5:]}.png"
            image = cv2.imread(str(DOMAINS / "s" / row.image), cv2.IMREAD_UNCHANGED)
            label = cv2.imread(str(DOMAINS / "s" / row.label), cv2.IMREAD_UNCHANGED)
            depth = cv2.imread(str(DOMAINS / "s" / row.depth), cv2.IMREAD_UNCHANGED)
            assert (image.shape, image.dtype) == ((H, W, 3), np.uint8)
            assert (label.shape, label.dtype) == ((H, W), np.uint8)
            assert set(np.unique(label).tolist()) <= set(range(19)) | {255}
            assert len(np.unique(label)) > 1  # a street scene, not a blank
            assert (depth.shape, depth.dtype) == ((H, W), np.uint16)
            assert depth.max() > 0
            assert row.sha256 == built_s[row.image]
    # the listed files are all the files there are
    listed = {p for split in ("train", "val") for column in ("image", "label", "depth")
              for p in pd.read_parquet(DOMAINS / "s" / f"{split}.parquet")[column]}  # fmt: skip
    assert listed == set(built_s) - {"train.parquet", "val.parquet"}


def test_data_is_deterministic(built_s):
    result = dgsynth("data", "s", "--workers", "1")  # over the existing folder
    assert result.exit_code == 0, result.output
    assert snapshot(DOMAINS / "s") == built_s
    assert [p.name for p in DOMAINS.iterdir()] == ["s"]


def test_gallery(built_s):
    assert dgsynth("data", "t", "--workers", "1").exit_code == 0
    result = dgsynth("gallery")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "wrote reports/data/gallery.png"
    sheet = cv2.imread("reports/data/gallery.png", cv2.IMREAD_UNCHANGED)
    # two rows (source s, target t) of 32 px tiles, each padded by 2 px; a row is the title band (150 px),
    # 2 images resized to 32x64 and one label overlay
    assert sheet.shape == (2 * (TILE + 2), 150 + 3 * (W * TILE // H), 3)
    assert sorted(p.name for p in Path("reports/data").iterdir()) == ["gallery.png"]


def _with_domain(name: str, spec: dict) -> dict:
    params = copy.deepcopy(PARAMS)
    params["data"]["domains"][name] = spec
    return params


WORLD_BAD = {"format": "world", "city": "a", "condition": "clear", "splits": {"val": 1}}


@pytest.mark.parametrize(
    ("domain", "spec", "expected"),
    [
        pytest.param("nope", None, ["params.yaml data.domains", "no domain 'nope'", "use one of: s, t"],
                     id="unknown-domain"),
        pytest.param("bad", {"format": "nope", "splits": {"val": 1}},
                     ["data.domains.bad", "unknown format 'nope'", "use world or one of: cityscapes, gta5"],
                     id="unknown-format"),
        pytest.param("bad", {**WORLD_BAD, "city": "z"},
                     ["data.domains.bad", "unknown city 'z'", "use one of: a, b"], id="unknown-city"),
        pytest.param("bad", {"format": "cityscapes", "root": "missing/cityscapes", "splits": {"val": None}},
                     ["data.domains.bad.root", "'missing/cityscapes' not found", "leftImg8bit/ and gtFine/"],
                     id="missing-root"),
        pytest.param("bad", {**WORLD_BAD, "colour": "red"},
                     ["data.domains.bad", "unknown key 'colour'",
                      "world domains take: city, condition, format, params, splits"], id="unknown-key"),
        pytest.param("bad", {**WORLD_BAD, "condition": "fog", "params": {"density": 1}},
                     ["data.domains.bad", "unknown fog parameter 'density'", "fog takes: visibility, airlight"],
                     id="unknown-condition-parameter"),
        pytest.param("bad", {**WORLD_BAD, "splits": {"val": True}},
                     ["data.domains.bad", "split sizes must be counts"], id="boolean-split-size"),
        pytest.param("bad", 3, ["data.domains.bad", "no `format`"], id="spec-not-a-mapping"),
    ],
)  # fmt: skip
def test_data_bad_input(project, domain, spec, expected):
    if spec is not None:
        write_params(_with_domain(domain, spec))
    result = dgsynth("data", domain, "--workers", "1")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1 and " (fix: " in result.stderr  # one line
    for fragment in expected:
        assert fragment in result.stderr
    assert "Traceback" not in result.output
    # nothing left behind: neither the domain folder nor a temporary `.bad.*.tmp` sibling
    assert not DOMAINS.exists() or list(DOMAINS.iterdir()) == []


def test_gallery_before_data_says_what_to_run(project):
    result = dgsynth("gallery")
    assert result.exit_code == 2
    assert "no such manifest" in result.stderr and "dgsynth data <domain>" in result.stderr
    assert not Path("reports/data/gallery.png").exists()


@pytest.mark.mm  # needs mmcv's compiled ops
def test_doctor(monkeypatch):
    for key in PINS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPENCV_IPP", "avx2")
    result = dgsynth("doctor")
    assert result.exit_code == 0, result.output
    rows = dict(re.match(r"^(.*?)\s{2,}(.*)$", line).groups() for line in result.stdout.splitlines())
    assert rows["torch"] == metadata.version("torch")
    assert rows["mmcv"] == metadata.version("mmcv") == "2.1.0"
    assert rows["device"].startswith(("cpu (", "cuda ("))
    assert rows["cpu instruction set"] == torch.backends.cpu.get_cpu_capability()  # e.g. AVX2, AVX512
    assert rows["instruction-set pins"] == "OPENCV_IPP=avx2"
    assert rows["mmcv ops"] == "ok"
    assert re.search(r"^mmcv ops +ok$", result.stdout, re.MULTILINE)
    assert rows["cpu kernels"] == f"roialign, nms on {torch.get_num_threads()} threads"  # setup.sh built them


def test_help_lists_the_subcommands():
    result = dgsynth("--help")
    assert result.exit_code == 0
    # one row per command, in rich's box ("│ data  Build ...") or click's plain list ("  data  Build ...")
    commands = re.findall(r"^(?:│ | {2})(\w+) {2,}\S", result.stdout, re.MULTILINE)
    assert commands == ["data", "gallery", "prompts", "generator", "synthesize", "filter", "train", "score", "evaluate",
                        "report", "doctor"]



def test_world_domain_without_the_world_section(project):
    params = copy.deepcopy(PARAMS)
    del params["data"]["world"]["height"]
    write_params(params)
    result = dgsynth("data", "s", "--workers", "1")
    assert result.exit_code == 2, result.output
    assert "params.yaml data.world: no height for the procedural world" in result.stderr
    assert "fix: add world: {seed: 0, height: 256, width: 512}" in result.stderr
    assert not DOMAINS.exists() or list(DOMAINS.iterdir()) == []
