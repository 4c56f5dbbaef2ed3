"""The procedural world: determinism, condition-independent layouts, labels and boxes that match the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.labels import CLASSES, IGNORE, TRAIN_ID
from pipeline.world import CONDITIONS, render

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
