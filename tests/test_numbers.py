"""Segmentation scores against a confusion matrix worked out by hand: `pipeline.seg.evaluate.evaluate` (mmseg's
IoUMetric underneath) on two tiny images whose predictions come from a stub model, with ignore pixels, classes
present in only the label or only the prediction, and the 14 classes absent from both (NaN, left out of mIoU)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.labels import CLASSES, IGNORE
from pipeline.manifest import write_manifest

pytestmark = pytest.mark.mm

ROAD, SIDEWALK, BUILDING, PERSON, CAR = (CLASSES.index(c) for c in ("road", "sidewalk", "building", "person", "car"))
X = IGNORE
LABELS = [np.array([[ROAD, ROAD, ROAD, SIDEWALK],
                    [ROAD, ROAD, SIDEWALK, X]]),
          np.array([[BUILDING, BUILDING, CAR, CAR],
                    [X, ROAD, ROAD, BUILDING]])]  # fmt: skip
# the ignored pixels are predicted building and car: counted, they would change both classes' IoU
PREDICTIONS = [np.array([[ROAD, ROAD, PERSON, SIDEWALK],
                         [ROAD, ROAD, SIDEWALK, BUILDING]]),
               np.array([[BUILDING, BUILDING, BUILDING, CAR],
                         [CAR, ROAD, SIDEWALK, BUILDING]])]  # fmt: skip


class StubSegmentor:
    """Answers `test_step` with the prediction stored for each image, at the label's size (as mmseg's predict does)."""

    def __init__(self, by_image: dict[str, np.ndarray]):
        self.by_image = by_image

    def test_step(self, data: dict) -> list:
        from mmengine.structures import PixelData

        samples = data["data_samples"]
        for sample in samples:
            sample.pred_sem_seg = PixelData(data=torch.from_numpy(self.by_image[sample.img_path])[None])
        return samples


@pytest.fixture
def manifest(tmp_path):
    rows = []
    for i, label in enumerate(LABELS):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((*label.shape, 3), np.uint8))
        cv2.imwrite(str(tmp_path / f"{i}-label.png"), label.astype(np.uint8))
        rows.append(dict(id=str(i), image=f"{i}.png", label=f"{i}-label.png", depth=None, boxes=None,
                         dataset="hand", domain="hand", city="x", condition="clear", split="val", width=4, height=2,
                         sha256=""))  # fmt: skip
    write_manifest(rows, tmp_path / "val.parquet")
    return tmp_path / "val.parquet"


def test_confusion_matrix_by_hand(manifest):
    # label (rows) x prediction (columns) over the 14 pixels that are not ignored
    valid = np.concatenate([label.ravel() for label in LABELS]) != IGNORE
    truth = np.concatenate([label.ravel() for label in LABELS])[valid]
    predicted = np.concatenate([p.ravel() for p in PREDICTIONS])[valid]
    n = len(CLASSES)
    matrix = np.bincount(n * truth + predicted, minlength=n * n).reshape(n, n)
    present = [ROAD, SIDEWALK, BUILDING, PERSON, CAR]
    assert matrix[np.ix_(present, present)].tolist() == [
        # road sidewalk building person car
        [5, 1, 0, 1, 0],  # road
        [0, 2, 0, 0, 0],  # sidewalk
        [0, 0, 3, 0, 0],  # building
        [0, 0, 0, 0, 0],  # person (predicted once, never labeled)
        [0, 0, 1, 0, 1],  # car
    ]
    assert matrix.sum() == 14 and np.delete(np.delete(matrix, present, 0), present, 1).sum() == 0
    # IoU = TP / (label pixels + predicted pixels - TP); no pixels in either: no IoU (NaN)
    tp, union = np.diag(matrix), matrix.sum(0) + matrix.sum(1) - np.diag(matrix)
    with np.errstate(invalid="ignore"):
        iou = dict(zip(CLASSES, tp / union))
    expected = {"road": 5 / 7, "sidewalk": 2 / 3, "building": 3 / 4, "person": 0.0, "car": 1 / 2}
    assert {c: iou[c] for c in expected} == pytest.approx(expected)

    import pipeline.seg.data  # noqa: F401  (registers the manifest dataset and label loader)
    from mmseg.utils import register_all_modules

    from pipeline.seg.evaluate import evaluate

    register_all_modules(init_default_scope=True)
    paths = {str(manifest.parent / f"{i}.png"): p.astype(np.int64) for i, p in enumerate(PREDICTIONS)}
    scores = evaluate(StubSegmentor(paths), (4, 2), manifest, batch=1)
    assert scores.per_class == pytest.approx({c: 100 * v for c, v in iou.items()}, nan_ok=True)
    absent = [c for c in CLASSES if c not in expected]
    assert len(absent) == 14 and all(np.isnan(scores.per_class[c]) for c in absent)
    # mIoU: the mean over the 5 classes present in labels or predictions; person's 0 counts, the absent ones do not
    assert scores.miou == pytest.approx(100 * (5 / 7 + 2 / 3 + 3 / 4 + 0 + 1 / 2) / 5)
    assert scores.miou == pytest.approx(52.619, abs=1e-3)
    assert scores.accuracy == pytest.approx(100 * 11 / 14)  # aAcc: the diagonal over the valid pixels
    assert scores.scores == {"mIoU": scores.miou, "aAcc": scores.accuracy}
