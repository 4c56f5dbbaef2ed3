"""The procedural world: determinism (the committed bits, whatever the CPU's BLAS kernel), condition-independent
layouts, labels and boxes that match the pixels."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.labels import CLASSES, IGNORE, TRAIN_ID
from pipeline.world import CONDITIONS, render
from pipeline.world.blur import blur_rows
from pipeline.world.raster import noise_tiles

H, W = 96, 192


@pytest.fixture(scope="module")
def shots():
    return {c: render(3, "a", c, "val", 7, H, W) for c in CONDITIONS}


def test_same_arguments_same_image():
    a, b = render(0, "b", "rain", "train", 4, H, W), render(0, "b", "rain", "train", 4, H, W)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) and a.boxes == b.boxes


def test_index_seed_and_split_change_the_layout():
    base = render(0, "a", "clear", "train", 0, H, W).label
    for other in (render(0, "a", "clear", "train", 1, H, W), render(1, "a", "clear", "train", 0, H, W),
                  render(0, "a", "clear", "val", 0, H, W)):  # fmt: skip
        assert (other.label != base).mean() > 0.05


def test_conditions_change_appearance_not_layout(shots):
    clear = shots["clear"]
    for condition, shot in shots.items():
        assert np.array_equal(shot.label, clear.label), condition
        assert np.array_equal(shot.depth, clear.depth), condition
        assert shot.boxes == clear.boxes, condition
        if condition != "clear":
            assert np.abs(shot.image.astype(int) - clear.image).mean() > 8, condition


def test_outputs_have_the_documented_types(shots):
    shot = shots["clear"]
    assert shot.image.shape == (H, W, 3) and shot.image.dtype == np.uint8
    assert shot.label.shape == (H, W) and shot.label.dtype == np.uint8
    assert set(np.unique(shot.label)) <= set(range(len(CLASSES))) | {IGNORE}
    assert shot.depth.shape == (H, W) and shot.depth.dtype == np.float32 and (shot.depth > 0).all()


def test_scene_structure(shots):
    label, depth = shots["clear"].label, shots["clear"].depth
    assert (label[0] == TRAIN_ID["sky"]).mean() > 0.2 or (label[0] == TRAIN_ID["building"]).mean() > 0.5
    assert np.bincount(label[-1], minlength=19)[TRAIN_ID["road"]] > W // 4  # the road is under the car
    road_rows = np.nonzero(label[:, W // 2] == TRAIN_ID["road"])[0]
    assert np.all(np.diff(depth[road_rows, W // 2]) < 0)  # ground depth falls towards the bottom of the image
    present = set(np.unique(label))
    assert {TRAIN_ID[c] for c in ("road", "sidewalk", "building", "car")} <= present


def test_boxes_are_tight_around_their_class_pixels():
    boxes_seen = 0
    for index in range(4):
        shot = render(0, "a", "clear", "train", index, H, W)
        for box in shot.boxes:
            x1, y1, x2, y2 = (int(box[k]) for k in ("x1", "y1", "x2", "y2"))
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
            inside = shot.label[y1:y2, x1:x2] == TRAIN_ID[box["label"]]
            assert inside.sum() >= 16
            # tight: the class touches every edge of its box
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            boxes_seen += 1
    assert boxes_seen >= 4


def test_fog_hides_far_things_and_night_is_dark(shots):
    clear, fog, night = (shots[c].image.astype(np.float32) for c in ("clear", "fog", "night"))
    far = shots["clear"].depth > 80
    near = shots["clear"].depth < 10
    assert far.any() and near.any()
    assert fog[far].std() < 0.35 * clear[far].std()  # far away, fog is nearly uniform airlight
    assert np.abs(fog[near] - clear[near]).mean() < np.abs(fog[far] - clear[far]).mean()
    assert night.mean() < 0.35 * clear.mean()


def test_condition_parameters_override_the_defaults():
    thin = render(0, "a", "fog", "val", 2, H, W, visibility=(500.0, 500.0)).image.astype(np.float32)
    thick = render(0, "a", "fog", "val", 2, H, W, visibility=(20.0, 20.0)).image.astype(np.float32)
    assert thick.std() < 0.6 * thin.std()


@pytest.mark.parametrize("kwargs, message", [({"city": "z"}, "unknown city"), ({"condition": "hail"}, "unknown condition")])
def test_unknown_city_or_condition(kwargs, message):
    args = {"city": "a", "condition": "clear", **kwargs}
    with pytest.raises(ValueError, match=message):
        render(0, args["city"], args["condition"], "val", 0, H, W)


def test_unknown_condition_parameter():
    with pytest.raises(ValueError, match="unknown parameters"):
        render(0, "a", "fog", "val", 0, H, W, density=3)


# The committed data's bits (dvc.lock's data stages, made on an AVX2 machine and again on an AVX-512 one): the coarse
# noise tile, and world_a_clear's and world_a_fog's first validation image at the default size, as RGB bytes.
TILE_SHA256 = "d32cd69b5763ac08ce347f1c83eae47388810bf4850a3de820fa691931fb3182"
IMAGE_SHA256 = {"clear": "de9926f67a40d2c3ec1654e2b880e175de8901032fd9c5e46b00207d1ef7c9d1",
                "fog": "571bd2dd572a26a50021951fb889df837cbfcb6a6f754574513e0a254e76d86b"}  # fmt: skip


def test_the_noise_tile_and_images_have_the_committed_bits():
    assert hashlib.sha256(noise_tiles()[1].tobytes()).hexdigest() == TILE_SHA256
    for condition, digest in IMAGE_SHA256.items():
        assert hashlib.sha256(render(0, "a", condition, "val", 0).image.tobytes()).hexdigest() == digest


@pytest.mark.parametrize("taps, length", [(13, 13), (33, 34), (33, 301), (63, 200)])
def test_blur_rows_is_numpys_convolution(taps, length):
    rng = np.random.default_rng(taps + length)
    rows, kernel = rng.standard_normal((9, length)).astype(np.float32), rng.uniform(0, 1, taps).astype(np.float32)
    expected = np.stack([np.convolve(row, kernel, mode="same") for row in rows])
    np.testing.assert_allclose(blur_rows(rows, kernel), expected, rtol=0, atol=1e-5)  # the same up to sum order


@pytest.mark.openblas_avx2
def test_blur_rows_has_the_bits_of_openblas_avx2_kernel():
    """With numpy's OpenBLAS forced to its AVX2 ("Haswell") kernel, np.convolve gives blur_rows' bits exactly."""
    code = """
import numpy as np
from pipeline.world.blur import blur_rows
rng = np.random.default_rng(0)
for taps in (13, 33, 63):
    rows, kernel = rng.standard_normal((20, 150)).astype(np.float32), rng.uniform(0, 1, taps).astype(np.float32)
    assert np.array_equal(blur_rows(rows, kernel), np.stack([np.convolve(r, kernel, "same") for r in rows])), taps
"""
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("taps", [11, 32, 65])
def test_blur_rows_refuses_kernels_it_does_not_order(taps):
    with pytest.raises(ValueError, match=f"odd length 13 to 63, got {taps} taps"):
        blur_rows(np.zeros((2, 100), np.float32), np.ones(taps, np.float32))
