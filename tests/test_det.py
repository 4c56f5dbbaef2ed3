"""Detection: box conversions between manifests and mmdet, class aliases, the instance-level discriminator's gradient
reversal, pseudo-box selection, mAP on hand-made predictions, the detectors' losses, and a two-iteration run on a
tiny Diverse-Weather (VOC) tree written here, then evaluated."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from PIL import Image

from pipeline.adapt.mdsf import InstanceDiscriminator, mdsf_loss
from pipeline.det.config import DET, detector, train_pipeline
from pipeline.det.data import class_index, source_classes, to_boxes, to_instances
from pipeline.det.evaluate import average_precision, scorer
from pipeline.det.methods.mt import select_pseudo_boxes
from pipeline.det.models import model_config
from pipeline.domains import build_domain
from pipeline.errors import InputError
from pipeline.manifest import write_manifest
from pipeline.seg.config import SEG
from pipeline.training.run import check_source, train
from pipeline.training.settings import load_settings

pytestmark = pytest.mark.mm
ROOT = Path(__file__).resolve().parents[1]
DET_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())["det"]
register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def mmdet_scope():
    with DefaultScope.overwrite_default_scope("mmdet"):
        yield


def test_boxes_round_trip_and_scale_with_the_image():
    classes = ["bicycle", "car", "person"]
    boxes = [dict(label="car", x1=3.0, y1=2.0, x2=6.0, y2=5.0), dict(label="bike", x1=0.0, y1=1.0, x2=2.0, y2=4.0)]
    instances = to_instances(boxes, classes, "here")
    assert instances == [dict(bbox=[3.0, 2.0, 6.0, 5.0], bbox_label=1, ignore_flag=0),
                         dict(bbox=[0.0, 1.0, 2.0, 4.0], bbox_label=0, ignore_flag=0)]  # fmt: skip
    back = to_boxes(np.array([i["bbox"] for i in instances]), np.array([1, 0]), classes)
    assert back == [dict(label="car", x1=3.0, y1=2.0, x2=6.0, y2=5.0), dict(label="bicycle", x1=0.0, y1=1.0, x2=2.0,
                                                                             y2=4.0)]  # fmt: skip
    # through mmdet's own transforms: a 2x resize doubles the pixel-edge coordinates exactly
    from mmcv.transforms import Compose

    settings = load_settings(copy.deepcopy(DET_PARAMS) | {"common": {**DET_PARAMS["common"], "scale": [16, 12],
                                                                      "crop": [12, 16]}}, "source", DET.methods)
    steps = [t for t in train_pipeline(settings) if t["type"] not in ("LoadImageFromFile", "RandomFlip")]
    results = dict(img=np.zeros((6, 8, 3), np.uint8), img_shape=(6, 8), ori_shape=(6, 8), instances=instances)
    packed = Compose(steps)(results)
    assert packed["data_samples"].gt_instances.bboxes.tensor.tolist() == [[6.0, 4.0, 12.0, 10.0], [0.0, 2.0, 4.0, 8.0]]


def test_class_aliases_and_unknown_names():
    assert class_index("bike", ["bicycle", "bus"], "x") == 0
    assert class_index("bicycle", ["bike", "bus"], "x") == 0
    assert class_index("motorcycle", ["bus", "motor"], "x") == 1
    with pytest.raises(InputError, match="'train' is not among the source's classes") as error:
        class_index("train", ["bicycle", "bus"], "data/domains/x/val.parquet row 3")
    assert "row 3" in str(error.value) and "ALIASES" in error.value.fix


def test_instance_discriminator_gradient_reversal_sign_and_scale():
    torch.manual_seed(0)
    discriminator = InstanceDiscriminator(8, 3, hidden=16, dropout=0.0)
    features = torch.randn(6, 8, 7, 7)
    domains = torch.tensor([0, 0, 1, 1, 2, 2])

    def gradient(scale):
        x = features.clone().requires_grad_(True)
        discriminator.zero_grad()
        torch.manual_seed(1)  # the same pairs and lambdas
        mdsf_loss(discriminator, x, domains, 3, 1.0, scale)[0].backward()
        return x.grad, torch.cat([p.grad.flatten() for p in discriminator.parameters()])

    plain, disc_plain = gradient(-1.0)  # scale -1: the gradient passes unchanged
    reversed_, disc_reversed = gradient(0.25)
    assert plain.abs().sum() > 0
    assert torch.allclose(reversed_, -0.25 * plain, atol=1e-7)
    assert torch.allclose(disc_reversed, disc_plain)  # the discriminator itself descends its loss either way


def test_pseudo_boxes_are_the_confident_ones():
    predicted = InstanceData(bboxes=torch.arange(16.0).view(4, 4), labels=torch.tensor([0, 1, 2, 1]),
                             scores=torch.tensor([0.9, 0.5, 0.8, 0.79]))  # fmt: skip
    kept = select_pseudo_boxes(predicted, 0.8)
    assert kept.labels.tolist() == [0, 2]
    assert kept.bboxes.tolist() == [[0.0, 1.0, 2.0, 3.0], [8.0, 9.0, 10.0, 11.0]]
    assert "scores" not in kept


def test_map50_on_hand_made_predictions():
    truths = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 1])),
              (np.array([[0, 0, 10, 10]], np.float32), np.array([0]))]  # fmt: skip
    detections = [
        (np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32), np.array([0.9, 0.8]), np.array([0, 0])),
        (np.array([[1, 0, 10, 10], [40, 40, 45, 45]], np.float32), np.array([0.7, 0.6]), np.array([0, 1])),
    ]
    ap, map50 = average_precision(detections, truths, 3)
    # class 0: TP (0.9), FP (0.8), TP (0.7; IoU 0.9) over 2 boxes -> area AP = 0.5 * 1 + 0.5 * 2/3
    assert ap[0] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3), abs=1e-3)
    assert ap[1] == 0  # its only detection misses its only box
    assert math.isnan(ap[2])  # no ground truth: no AP, left out of the mean
    assert map50 == pytest.approx((ap[0] + ap[1]) / 2)


def _batch(size=64):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 3, size, size, generator=generator)
    samples = []
    for i in range(4):
        source = i < 2
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                             scale_factor=(1.0, 1.0), batch_input_shape=(size, size),
                                             domain="source" if source else "synthetic", labeled=i != 3,
                                             pseudo_domain=0 if source else i - 1))  # fmt: skip
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[4.0, 4.0, 30.0, 40.0]]), labels=torch.tensor([1]))
        samples.append(sample)
    return inputs, samples


@pytest.mark.parametrize("method", ["naive", "drsf", "mt"])
def test_detector_losses(method):
    settings = load_settings(DET_PARAMS, method, DET.methods)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(model_config("tiny", 2, detector(settings, ["fog", "rain"]))))
    model.init_weights()
    inputs, samples = _batch()
    losses = model.loss(inputs, samples)
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    if method == "drsf":
        assert {"loss_mdsf_img", "loss_mdsf_ins", "acc_domain_img", "acc_domain_ins"} <= set(losses)
        assert model.instance_discriminator.net[0].weight.grad.abs().sum() > 0
        assert all(d.net[0].weight.grad.abs().sum() > 0 for d in model.image_discriminators.values())
    if method == "mt":
        assert {"loss_pseudo_cls", "loss_pseudo_rpn_cls", "pseudo_boxes"} <= set(losses)
        assert not any(p.requires_grad for p in model.teacher.parameters())


def write_voc_tree(root: Path, n: int = 6) -> Path:
    """A Diverse-Weather domain folder (daytime_clear) of n 96x64 JPEGs, each with a bright 'car' and a 'bike' box."""
    voc = root / "daytime_clear" / "VOC2007"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 60, (64, 96, 3), dtype=np.uint8)
        pixels[10:40, 8 + i:48 + i] = 230
        Image.fromarray(pixels).save(voc / "JPEGImages" / f"f{i}.jpg")
        objects = (f"<object><name>car</name><bndbox><xmin>{9 + i}</xmin><ymin>11</ymin><xmax>{48 + i}</xmax>"
                   f"<ymax>40</ymax></bndbox></object><object><name>bike</name><bndbox><xmin>60</xmin><ymin>30"
                   "</ymin><xmax>80</xmax><ymax>60</ymax></bndbox></object>")  # fmt: skip
        (voc / "Annotations" / f"f{i}.xml").write_text(f"<annotation><size><width>96</width><height>64</height>"
                                                       f"</size>{objects}</annotation>")  # fmt: skip
    (voc / "ImageSets/Main/train.txt").write_text("".join(f"f{i}\n" for i in range(n)))
    return root / "daytime_clear"


def test_two_iterations_on_a_voc_tree_then_evaluate(tmp_path):
    root = write_voc_tree(tmp_path / "dwd")
    build_domain("daytime_clear", {"format": "dwd", "root": str(root), "splits": {"train": None}}, None,
                 tmp_path / "domains/daytime_clear")  # fmt: skip
    manifest = tmp_path / "domains/daytime_clear/train.parquet"
    assert source_classes(str(manifest)) == ["bike", "bus", "car", "motor", "person", "rider", "truck"]
    with pytest.raises(InputError, match="source rows have no pixel label"):
        check_source(SEG, manifest)  # a box-only domain is no segmentation source
    cfg = copy.deepcopy(DET_PARAMS)
    cfg["common"].update(arch="tiny", iters=2, batch=2, scale=[96, 64], crop=[64, 96], warmup=1, workers=0,
                         checkpoint_every=2)  # fmt: skip
    settings = load_settings(cfg, "source", DET.methods)
    out = tmp_path / "models/source-s0"
    summary = train(DET, settings, 0, [manifest], None, out, tmp_path / "curves", tmp_path / "wip")
    assert "2 iterations of 2 images" in summary and (out / "model.pth").is_file()
    assert not list((tmp_path / "wip").iterdir())
    result = scorer(out)(manifest, 4, 2, "test")
    assert list(result.per_class)[:3] == ["bike", "bus", "car"] and len(result.kept) == 2
    assert math.isnan(result.per_class["bus"]) and not math.isnan(result.per_class["car"])  # no bus boxes: no AP
    assert 0 <= result.map50 <= 100 and result.scores == {"mAP50": result.map50}


def test_a_source_without_boxes_is_no_detection_source(tmp_path):
    row = dict(id="a", image="a.png", label="a_label.png", depth=None, boxes=None, dataset="x", domain="x", city="x",
               condition="clear", split="train", width=8, height=6, sha256="0")  # fmt: skip
    write_manifest([row, {**row, "id": "b", "boxes": []}], tmp_path / "train.parquet")
    with pytest.raises(InputError, match="1 of 2 source rows have no box list, e.g. row 0") as error:
        check_source(DET, tmp_path / "train.parquet")
    assert "`det.seeds: []` in params.yaml" in str(error.value)  # how to leave detection out
