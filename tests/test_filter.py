"""The feature-statistics filter: the distances on hand-computed values, Ledoit-Wolf against its definition, batched
statistics equal to one-by-one ones, corrupted images (noise, blank, shuffled patches) ranked below every good one,
the keep/reject rules, the written manifests and FreeMask's masked labels."""

from __future__ import annotations

import json
import re

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from pipeline import packed
from pipeline.errors import InputError
from pipeline.filter import report
from pipeline.filter.apply import apply
from pipeline.filter.features import load_reference, per_image_miou, run_pass
from pipeline.filter.rules import load_settings, select
from pipeline.filter.stats import SourceGaussian, channel_stats, shrunk_covariance
from pipeline.labels import IGNORE
from pipeline.manifest import read_manifest, write_manifest
from pipeline.seg.models import model_config
from pipeline.training.run import export
from stages import data as data_stage

ROOT = Path(__file__).resolve().parents[1]
FILTER = yaml.safe_load((ROOT / "params.yaml").read_text())["filter"]
CORRUPTIONS = ("noise", "blank", "shuffled")
register_all_modules(init_default_scope=False)


# --- the statistics ------------------------------------------------------------------------------------------------


def test_channel_stats_are_means_then_stds_per_level():
    level = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # 1 image, 2 channels, 1x2 pixels
    assert channel_stats([level, level[:, :1]]).tolist() == [[2.0, 2.0, 1.0, 0.0, 2.0, 1.0]]


def test_ledoit_wolf_weight_matches_its_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3)) * [1.0, 2.0, 0.5]
    x -= x.mean(0)
    covariance, weight = shrunk_covariance(x)
    n, p = x.shape
    sample = x.T @ x / n
    mu = np.trace(sample) / p
    d = np.linalg.norm(sample - mu * np.eye(p)) ** 2 / p
    b = sum(np.linalg.norm(np.outer(row, row) - sample) ** 2 for row in x) / n**2 / p
    assert weight == pytest.approx(min(b, d) / d)
    np.testing.assert_allclose(covariance, (1 - weight) * sample + weight * mu * np.eye(p))
    assert shrunk_covariance(x, 0.25)[1] == 0.25


def test_ledoit_wolf_shrinks_little_when_samples_are_plenty_and_structured():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4)) * [10.0, 1.0, 1.0, 0.1]
    assert shrunk_covariance(x - x.mean(0))[1] < 0.01
    few = rng.normal(size=(10, 50))  # fewer samples than dimensions: the sample covariance is singular
    covariance, weight = shrunk_covariance(few - few.mean(0))
    assert weight > 0.5 and np.linalg.eigvalsh(covariance).min() > 0


def test_mahalanobis_and_frechet_on_hand_computed_values():
    # one level of one channel: descriptions (mean, std)
    source = np.array([[1.0, 1.0], [3.0, 1.0], [1.0, 3.0], [3.0, 3.0]])
    gaussian = SourceGaussian.fit(source, [1], shrinkage=1.0)  # identity covariance after scaling by each block's rms
    np.testing.assert_allclose(gaussian.scale, [1.0, 1.0])
    assert gaussian.mahalanobis(np.array([[2.0, 2.0], [5.0, 2.0], [2.0, 0.0]])) == pytest.approx([0.0, 3.0, 2.0])
    # the source channel: M = 2, S^2 = mean(s^2 + m^2) - M^2 = (1+1+1+9+9+1+9+9)/4 - 4 = 6
    assert gaussian.channel_std[0] ** 2 == pytest.approx(6.0)
    expected = ((4.0 - 2.0) ** 2 + (1.0 - 6**0.5) ** 2) / 6.0
    assert gaussian.frechet(np.array([[4.0, 1.0]])) == pytest.approx([expected])


def test_per_image_miou_matches_mmseg_iou_metric():
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(0)
    label = torch.from_numpy(rng.choice([0, 1, 2, 13, IGNORE], size=(20, 30)))
    pred = torch.from_numpy(rng.choice([0, 1, 2, 5], size=(20, 30)))
    intersect, union, _, _ = IoUMetric.intersect_and_union(pred, label, 19, IGNORE)
    present = union > 0
    assert per_image_miou(pred, label) == pytest.approx(float((intersect[present] / union[present]).mean() * 100))


# --- the reference network on rendered images ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def mmseg_scope():
    with DefaultScope.overwrite_default_scope("mmseg"):
        yield


def corrupt(image: np.ndarray, kind: str, rng: np.random.Generator, patch: int = 8) -> np.ndarray:
    if kind == "noise":
        return rng.integers(0, 256, image.shape, dtype=np.uint8)
    if kind == "blank":
        return np.full_like(image, 128)
    h, w = image.shape[:2]
    tiles = [image[y : y + patch, x : x + patch] for y in range(0, h, patch) for x in range(0, w, patch)]
    out = np.empty_like(image)
    for k, t in enumerate(rng.permutation(len(tiles))):
        y, x = divmod(k, w // patch)
        out[y * patch : (y + 1) * patch, x * patch : (x + 1) * patch] = tiles[t]
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A rendered source domain (24 train, 8 val images), a random-weight tiny source model, and a 'synthetic'
    manifest of 8 good images (other renders of the same world, conditions fog/mist and rain) and 9 corrupted ones."""
    project = tmp_path_factory.mktemp("filter")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        (project / "params.yaml").write_text(yaml.safe_dump({"data": {
            "world": {"seed": 0, "height": 64, "width": 128},
            "domains": {"src": {"format": "world", "city": "a", "condition": "clear",
                                "splits": {"train": 24, "val": 8, "test": 8}}}}}))  # fmt: skip
        data_stage.run("src", workers=1)
    torch.manual_seed(0)
    config = model_config("tiny")
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = MODELS.build(config)
    model.init_weights()
    export(model, {"model": config}, (128, 64), [], project / "model")
    rng = np.random.default_rng(0)
    rows = []
    for i, row in enumerate(read_manifest(project / "data/domains/src/test.parquet").to_dict("records")):
        condition = ("fog/mist", "rain")[i % 2]
        rows.append(dict(row, id=f"good-{i}", domain="synthetic", condition=condition))
        if i < 3:
            for kind in CORRUPTIONS:
                path = project / "bad" / f"{kind}-{i}.png"
                path.parent.mkdir(exist_ok=True)
                cv2.imwrite(str(path), corrupt(cv2.imread(row["image"]), kind, rng))
                rows.append(dict(row, id=f"{kind}-{i}", image=str(path), domain="synthetic", condition=condition))
    write_manifest(rows, project / "synthetic.parquet")
    return project


def settings(project: Path, **changes):
    cfg = dict(FILTER, model=str(project / "model"), batch=4, **changes)
    return load_settings(cfg)


def test_batched_statistics_equal_one_by_one(project):
    reference = load_reference(project / "model", None, [0, 1, 2, 3])
    batched = run_pass(reference, project / "synthetic.parquet", 5, "batched")
    single = run_pass(reference, project / "synthetic.parquet", 1, "single")
    assert batched.channels == [8, 16, 32, 64] and batched.stats.shape == (17, 2 * (8 + 16 + 32 + 64))
    np.testing.assert_allclose(batched.stats, single.stats, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batched.miou, single.miou)
    assert batched.ids == single.ids and batched.ids[:2] == ["good-0", "noise-0"]


@pytest.mark.parametrize("score", ["mahalanobis", "frechet"])
def test_every_corrupted_image_ranks_below_every_good_one(project, score):
    chosen = settings(project, score=score, band=[0.0, 0.45], per_condition=False)
    rows = apply(chosen, project / "data/domains/src/train.parquet", None, project / "synthetic.parquet",
                 project / f"out-{score}")  # fmt: skip
    good = rows[rows["id"].str.startswith("good")]
    bad = rows[~rows["id"].str.startswith("good")]
    assert len(good) == 8 and len(bad) == 9
    assert bad[score].min() > good[score].max()
    # quantiles are rank / 16: the 8 good images lie at 0 .. 7/16 < 0.45, so exactly the corrupted ones are far
    assert set(rows.loc[~rows["kept"], "id"]) == set(bad["id"]) and bad["reason"].str.startswith("far:").all()


def test_kept_and_rejected_manifests_point_at_the_images(project):
    out = project / "written"
    rows = apply(settings(project, band=[0.1, 0.8]), project / "data/domains/src/train.parquet",
                 project / "data/domains/src/val.parquet", project / "synthetic.parquet", out)  # fmt: skip
    kept, rejected = read_manifest(out / "kept.parquet"), read_manifest(out / "rejected.parquet")
    assert len(kept) + len(rejected) == 17 and len(rejected) > 0
    assert all(Path(p).is_file() for p in [*kept["image"], *rejected["image"], *kept["label"]])
    assert (rejected["reason"] != "").all() and {"mahalanobis", "frechet", "miou", "quantile"} <= set(kept.columns)
    assert (rows["set"] == "source").sum() == 8  # the held-out source images are scored too
    # per condition: the quantiles are within fog/mist and rain separately, so each has a nearest image at 0
    synthetic = rows[rows["set"] == "synthetic"]
    assert synthetic.groupby("condition")["quantile"].min().tolist() == [0.0, 0.0]
    assert not any(p.name.endswith(".tmp") for p in project.iterdir())


def test_two_source_images_name_the_fix_and_a_fixed_shrinkage_fits_them(project):
    two = project / "two.parquet"
    write_manifest(read_manifest(project / "data/domains/src/train.parquet").head(2).to_dict("records"), two)
    out = project / "two"
    with pytest.raises(InputError, match="2 images' descriptions with shrinkage 0 is singular") as error:
        apply(settings(project), two, None, project / "synthetic.parquet", out)  # Ledoit-Wolf's weight is 0 at n = 2
    assert str(two) in str(error.value) and "filter.shrinkage: 0.5" in str(error.value) and not out.exists()
    rows = apply(settings(project, shrinkage=0.5), two, None, project / "synthetic.parquet", out)
    assert len(rows) == 17 and np.isfinite(rows["mahalanobis"]).all()


def test_disabled_keeps_everything_and_still_scores(project):
    out = project / "disabled"
    rows = apply(settings(project, enabled=False, band=[0.0, 0.5]), project / "data/domains/src/train.parquet",
                 None, project / "synthetic.parquet", out)  # fmt: skip
    assert len(read_manifest(out / "kept.parquet")) == 17 and len(read_manifest(out / "rejected.parquet")) == 0
    assert rows["kept"].all() and (rows["reason"] != "").sum() > 0  # what the rules would have said


def test_consistency_rejects_labeled_images_the_source_model_disagrees_with(project):
    rows = apply(settings(project, band=[0.0, 1.0], consistency=99.9), project / "data/domains/src/train.parquet",
                 None, project / "synthetic.parquet", project / "consistency")  # fmt: skip
    low = rows["miou"] < 99.9  # a random model agrees with no label
    assert low.all() and rows.loc[low, "reason"].str.startswith("inconsistent: mIoU").all()


@pytest.mark.parametrize(("tolerance", "all_masked"), [(1e-9, True), (1e9, False)])
def test_freemask_ignores_pixels_whose_loss_is_above_the_class_limit(project, tolerance, all_masked):
    out = project / f"freemask-{tolerance}"
    rows = apply(settings(project, band=[0.0, 1.0], freemask=tolerance), project / "data/domains/src/train.parquet",
                 None, project / "synthetic.parquet", out)  # fmt: skip
    kept = read_manifest(out / "kept.parquet")
    assert [Path(p).name for p in kept["label"]] == [f"{i}.png" for i in kept["id"]]
    assert sorted(p.name for p in out.iterdir()) == ["kept.parquet", "labels.tar", "rejected.parquet"]  # packed
    masked = packed.imread(kept["label"].iloc[0], cv2.IMREAD_UNCHANGED)
    original = cv2.imread(read_manifest(project / "synthetic.parquet")["label"].iloc[0], cv2.IMREAD_UNCHANGED)
    if all_masked:
        assert (masked == IGNORE).all() and (rows["masked"] == 1.0).all()
    else:
        assert (masked == original).all() and (rows["masked"] == 0.0).all()


def test_another_backbone_by_config(project):
    backbone = dict(scope="mmdet", type="ResNet", depth=18, out_indices=(0, 3))
    reference = load_reference(project / "model", backbone, [0, 1])
    described = run_pass(reference, project / "synthetic.parquet", 8, "mmdet")
    assert described.channels == [64, 512] and described.stats.shape == (17, 2 * 576)


# --- a detector as the reference (detection-only runs) -------------------------------------------------------------


@pytest.fixture(scope="module")
def detector(project) -> Path:
    """A random-weight tiny Faster R-CNN over the source's box classes, exported as det-source is."""
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.config import Config

    from pipeline.det.data import source_classes
    from pipeline.det.models import model_config as det_config

    classes = source_classes(str(project / "data/domains/src/train.parquet"))
    torch.manual_seed(0)
    config = det_config("tiny", len(classes))
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = DET_MODELS.build(Config(dict(model=config)).model)  # (a Config: mmdet reads train_cfg.rpn)
    model.init_weights()
    export(model, {"model": config}, (128, 64), [], project / "detector", {"classes": classes})
    return project / "detector"


def test_a_detector_describes_images_by_its_backbone_levels(project, detector):
    reference = load_reference(detector, None, [0, 1, 2, 3])
    assert reference.detector and reference.classes == json.loads((detector / "config.json").read_text())["classes"]
    batched = run_pass(reference, project / "synthetic.parquet", 5, "batched")
    single = run_pass(reference, project / "synthetic.parquet", 1, "single")
    assert batched.channels == [8, 16, 32, 64] and batched.ids[:2] == ["good-0", "noise-0"]
    np.testing.assert_allclose(batched.stats, single.stats, rtol=1e-4, atol=1e-5)
    assert np.isnan(batched.miou).all()


def test_a_detector_filters_by_distance_only(project, detector):
    chosen = replace(settings(project, band=[0.0, 0.45], per_condition=False), model=str(detector))
    rows = apply(chosen, project / "data/domains/src/train.parquet", project / "data/domains/src/val.parquet",
                 project / "synthetic.parquet", project / "det-out")  # fmt: skip
    kept = read_manifest(project / "det-out/kept.parquet")
    assert kept["id"].str.startswith("good").all() and kept["boxes"].notna().all() and rows["miou"].isna().all()
    # even at random weights, its levels put every corrupted image farther (Mahalanobis) than every good one
    assert set(rows.loc[~rows["kept"], "id"]) == {f"{kind}-{i}" for kind in CORRUPTIONS for i in range(3)}
    for key, value in (("consistency", 50), ("freemask", 1.25)):
        with pytest.raises(InputError, match=f"(?s)filter.{key}: .*is a detector.*models/seg/source-s0"):
            apply(replace(settings(project, **{key: value}), model=str(detector)),
                  project / "data/domains/src/train.parquet", None, project / "synthetic.parquet",
                  project / "det-refused")  # fmt: skip
    assert not (project / "det-refused").exists()


# --- the rules -----------------------------------------------------------------------------------------------------


def test_quantile_band_per_condition():
    scores = pd.DataFrame(dict(id=list("abcdef"), condition=["x", "x", "x", "y", "y", "y"],
                               mahalanobis=[1.0, 2.0, 9.0, 10.0, 20.0, 90.0], frechet=0.0,
                               miou=[50.0, 10.0, np.nan, 50.0, 50.0, 50.0]))  # fmt: skip
    base = load_settings(dict(FILTER, band=[0.25, 0.75]))
    picked = select(scores, base)
    assert picked["quantile"].tolist() == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]
    assert picked["kept"].tolist() == [False, True, False, False, True, False]
    assert picked["reason"][0].startswith("near:") and picked["reason"][2].startswith("far:")
    pooled = select(scores, replace(base, per_condition=False, band=(0.0, 0.9), consistency=20.0))
    assert pooled["kept"].tolist() == [True, False, True, True, True, False]
    assert pooled["reason"][1] == "inconsistent: mIoU 10.0 < 20"


def test_layout_is_synthetic_miou_relative_to_real_per_condition(tmp_path):
    rows = pd.DataFrame(dict(condition=[report.SOURCE, report.SOURCE, "fog", "fog", "rain", "rain"],
                             miou=[40.0, 20.0, 15.0, 30.0, 24.0, np.nan]))  # fmt: skip
    layout = report.layout(rows)
    assert layout["real_miou"] == 30.0  # the real source val images' mean
    assert (layout["miou"], layout["relative"], layout["images"]) == (23.0, round(23 / 30, 4), 3)  # NaN: no label
    assert layout["conditions"] == {"fog": {"miou": 22.5, "relative": 0.75, "images": 2},
                                    "rain": {"miou": 24.0, "relative": 0.8, "images": 1}}  # fmt: skip
    assert report.layout(rows.assign(miou=np.nan)) == {}  # a detector's pass: no mIoU
    report.layout_figure(layout, tmp_path / "layout.png")
    report.layout_figure({}, tmp_path / "empty.png")
    assert cv2.imread(str(tmp_path / "layout.png")) is not None and (tmp_path / "empty.png").stat().st_size > 0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("band", [0.9, 0.1], "band: [0.9, 0.1] is not valid"),
    ("score", "cosine", "score: 'cosine' is not valid"),
    ("shrinkage", 0, "shrinkage: 0 is not valid"),
    ("colour", 1, "unknown key 'colour'"),
    ("enabled", "no", "enabled: 'no' is not valid"),
    ("consistency", "high", "consistency: 'high' is not valid"),
    ("freemask", "on", "freemask: 'on' is not valid"),
    ("sheet", [8, 64], "sheet: [8, 64] is not valid"),
    ("sheet", {"images": 0, "tile_height": 64}, "sheet: {'images': 0, 'tile_height': 64} is not valid"),
])  # fmt: skip
def test_bad_settings_name_the_key_and_the_fix(key, value, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_settings(dict(FILTER, **{key: value}))


def test_a_level_the_backbone_lacks_is_named(project):
    reference = load_reference(project / "model", None, [0, 4])
    with pytest.raises(InputError, match=re.escape("filter.levels: [0, 4]: the backbone gives 4 outputs")):
        run_pass(reference, project / "synthetic.parquet", 8, "levels")


def test_missing_model_says_how_to_build_it(tmp_path):
    with pytest.raises(InputError, match="(?s)no model.pth here.*dvc repro train-source.*det-source"):
        load_reference(tmp_path, None, [0])
