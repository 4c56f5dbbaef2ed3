"""Segmentation training and evaluation plumbing: manifests as mmseg datasets (unlabeled rows, domain tags), paired
batches, the checked `train` section, and IoU from mmseg's IoUMetric against its own mIoU."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
import yaml
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, DefaultScope
from mmengine.structures import PixelData
from mmcv.transforms import RandomResize
from mmengine.registry import TRANSFORMS
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

from pipeline.errors import InputError
from pipeline.labels import CLASSES
from pipeline.manifest import read_manifest, write_manifest
from pipeline.paired import PairedDataset, paired_collate
from pipeline.seg.config import METHODS, SEG, eval_pipeline, segmentor, train_pipeline
from pipeline.seg.data import ManifestSegDataset
from pipeline.seg.evaluate import iou_from_areas
from pipeline.training.runner import precision
from pipeline.training.settings import load_settings
from pipeline.training.run import train
from stages import data as data_stage

pytestmark = pytest.mark.mm
ROOT = Path(__file__).resolve().parents[1]
TRAIN = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build from mmseg's registries, whatever scope an earlier test's Runner left as the default."""
    with DefaultScope.overwrite_default_scope("mmseg"):
        yield


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    """A 3-image world source domain and a synthetic manifest of its images under two conditions, one unlabeled,
    each naming its source image (`source_id`) in reverse order: synthetic i is source 2 - i's image."""
    project = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        (project / "params.yaml").write_text(yaml.safe_dump({"data": {
            "world": {"seed": 0, "height": 32, "width": 64},
            "domains": {"src": {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 3}}}}}))
        data_stage.run("src")
    source = project / "data/domains/src/train.parquet"
    rows = read_manifest(source).to_dict("records")
    synthetic = [dict(row, id=f"syn-{i}", domain="synthetic", condition=["fog/mist", "rain", "fog/mist"][i],
                      label=None if i == 1 else row["label"], source_id=row["id"])
                 for i, row in enumerate(reversed(rows))]  # fmt: skip
    write_manifest(synthetic, project / "synthetic.parquet", pa.schema([("source_id", pa.string())]))
    return source, project / "synthetic.parquet"


def test_manifest_rows_become_tagged_samples_and_unlabeled_rows_are_all_ignore(manifests):
    source, synthetic = manifests
    dataset = ManifestSegDataset([str(synthetic)], domain="synthetic", conditions=["rain", "fog/mist"],
                                 pipeline=eval_pipeline((64, 32)))  # fmt: skip
    samples = [dataset[i]["data_samples"] for i in range(3)]
    assert [s.metainfo["pseudo_domain"] for s in samples] == [1, 2, 1]  # source, fog/mist, rain: sorted names
    assert [s.metainfo["labeled"] for s in samples] == [True, False, True]
    assert (samples[1].gt_sem_seg.data == 255).all()
    assert (samples[0].gt_sem_seg.data != 255).any() and samples[0].gt_sem_seg.data.shape == (1, 32, 64)
    assert dataset.metainfo["classes"] == CLASSES


def test_paired_batches_put_every_source_before_its_synthetic_partner(manifests):
    source, synthetic = manifests
    pipeline = eval_pipeline((64, 32))
    paired = PairedDataset(dict(type="ManifestSegDataset", manifests=[str(source)], pipeline=pipeline),
                           dict(type="ManifestSegDataset", manifests=[str(synthetic)], domain="synthetic",
                                conditions=["fog/mist", "rain"], pipeline=pipeline))  # fmt: skip
    assert len(paired) == 9
    batch = paired_collate([paired[0], paired[4], paired[8]])  # (source 0, syn 0), (1, 1), (2, 2)
    domains = [s.metainfo["domain"] for s in batch["data_samples"]]
    assert domains == ["source"] * 3 + ["synthetic"] * 3
    assert [Path(s.metainfo["img_path"]).name for s in batch["data_samples"][:3]] == \
           [Path(s.metainfo["img_path"]).name for s in batch["data_samples"][5:2:-1]]  # fmt: skip


def test_pairs_by_source_share_the_source_image_crop_and_flip(manifests):
    source, synthetic = manifests
    pipeline = train_pipeline(_settings("diga", scale=[64, 32], crop=[16, 24]))
    halves = [dict(type="ManifestSegDataset", manifests=[str(source)], pipeline=pipeline),
              dict(type="ManifestSegDataset", manifests=[str(synthetic)], domain="synthetic",
                   conditions=["fog/mist", "rain"], pipeline=pipeline)]  # fmt: skip
    paired = PairedDataset(*halves, by_source=True)
    assert len(paired) == 3
    np.random.seed(0)
    views = []
    for _ in range(4):
        for index in range(3):
            batch = paired_collate([paired[index]])
            (source_sample, synthetic_sample), (source_image, synthetic_image) = batch["data_samples"], batch["inputs"]
            assert Path(source_sample.img_path).name == Path(synthetic_sample.img_path).name  # its own source image
            assert synthetic_sample.metainfo["pseudo_domain"] == [1, 2, 1][index]
            assert source_image.shape == (3, 16, 24)
            assert torch.equal(source_image, synthetic_image)  # the same image: so the same crop box and flip
            assert source_sample.flip == synthetic_sample.flip
            if index != 1:  # the unlabeled synthetic row keeps its all-ignore label
                assert torch.equal(source_sample.gt_sem_seg.data, synthetic_sample.gt_sem_seg.data)
            views.append((index, source_image))
    crops = {(i, image.numpy().tobytes()) for i, image in views}
    assert len(crops) > 3  # the crop box (and flip) is drawn anew for every pair
    paired = PairedDataset(*halves)  # random pairs crop independently
    assert not all(torch.equal(*paired_collate([paired[i]])["inputs"]) for i in (0, 4, 8))


def test_augment_adds_photometric_distortion_and_random_scales(manifests):
    source, _ = manifests
    assert _settings("source_aug").augment and not _settings("source").augment
    assert TRAIN["common"]["augment"] is False and "source_aug" in TRAIN["methods"]
    pipeline = train_pipeline(_settings("source_aug", scale=[64, 32], crop=[16, 16]))
    types = [step["type"] for step in pipeline]
    assert "PhotoMetricDistortion" in types and isinstance(TRANSFORMS.build(pipeline[2]), RandomResize)
    assert types.index("SharedRandomResize") < types.index("SharedRandomCrop")
    assert "PhotoMetricDistortion" not in [step["type"] for step in train_pipeline(_settings("source"))]
    dataset = ManifestSegDataset([str(source)], pipeline=pipeline)
    np.random.seed(0)
    factors = [dataset[0]["data_samples"].scale_factor for _ in range(20)]
    assert len(set(factors)) > 5
    assert all(0.5 <= w <= 2.0 and h == pytest.approx(w, rel=0.1) for w, h in factors)


def test_iou_from_areas_matches_mmseg_iou_metric():
    generator = torch.Generator().manual_seed(0)
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=CLASSES)
    for _ in range(3):
        label = torch.randint(0, 5, (1, 16, 16), generator=generator)
        label[0, :2] = 255
        pred = torch.where(torch.rand(1, 16, 16, generator=generator) < 0.7, label.clamp(max=4),
                           torch.randint(0, 6, (1, 16, 16), generator=generator))  # fmt: skip
        sample = SegDataSample(gt_sem_seg=PixelData(data=label), pred_sem_seg=PixelData(data=pred))
        metric.process({}, [sample.to_dict()])
    iou, accuracy = iou_from_areas(metric.results)
    expected = metric.compute_metrics(metric.results)
    assert np.isnan(iou[6:]).all() and not np.isnan(iou[:5]).any()  # classes 6.. never occur; class 5 only predicted
    assert iou[5] == 0
    assert np.nanmean(iou) == pytest.approx(expected["mIoU"], abs=0.01)
    assert accuracy == pytest.approx(expected["aAcc"], abs=0.01)


def _settings(method: str, **common):
    cfg = copy.deepcopy(TRAIN)
    cfg["common"].update(common)
    return load_settings(cfg, method, METHODS)


@pytest.mark.parametrize(
    ("method", "common", "expected"),
    [
        pytest.param("dann", {}, "unknown method 'dann'", id="unknown-method"),
        pytest.param("naive", {"batch": 3}, "naive needs an even batch, got 3", id="odd-paired-batch"),
        pytest.param("source", {"warmup": 500, "iters": 300}, "500 is not in [0, iters)", id="long-warmup"),
        pytest.param("source", {"arch": "unet"}, "unknown architecture 'unet'", id="unknown-arch"),
        pytest.param("source_aug", {"augment": "yes"}, "'yes' is not true or false", id="augment-not-a-flag"),
        pytest.param("source", {"pretrained": "/nowhere/r101.pth"}, "no checkpoint at '/nowhere/r101.pth'",
                     id="missing-checkpoint"),
        pytest.param("source", {"pretrained": "https://download.example/r101.pth"}, "is not in torch hub's cache",
                     id="uncached-url"),
    ],
)  # fmt: skip
def test_bad_train_settings_name_the_key_and_the_fix(method, common, expected):
    with pytest.raises(InputError) as error:
        _settings(method, **common)
    assert expected in str(error.value) and "fix: " in str(error.value)


def test_method_arguments_are_checked_against_the_segmentor():
    assert _settings("source").batch == TRAIN["common"]["batch"]
    cfg = copy.deepcopy(TRAIN)
    cfg["diga"]["kd_wieght"] = 1.0
    with pytest.raises(InputError, match="unknown argument 'kd_wieght'") as error:
        segmentor(load_settings(cfg, "diga", METHODS), [])
    assert "kd_weight" in str(error.value)
    cfg["naive"] = {"lr": 1}
    with pytest.raises(InputError, match="naive takes none"):
        load_settings(cfg, "naive", METHODS)
    drsf = segmentor(load_settings(TRAIN, "drsf", METHODS), ["fog/mist", "rain"])
    assert drsf["type"] == "DRSFSegmentor" and drsf["num_pseudo_domains"] == 2


@HOOKS.register_module()
class StopAfterTwoIterations(Hook):
    """Kills a training run after its second iteration (and the checkpoint written there)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == 2:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_from_its_checkpoint(manifests, tmp_path):
    source, synthetic = manifests
    settings = _settings("naive", arch="tiny", iters=4, batch=2, scale=[64, 32], crop=[32, 32], warmup=1, workers=0,
                         checkpoint_every=2)  # fmt: skip
    out, curves, wip = tmp_path / "models/naive-s0", tmp_path / "curves", tmp_path / "wip"

    def with_stop(*args, **kwargs):
        config = SEG.runner_config(*args, **kwargs)
        stop = dict(type="StopAfterTwoIterations", priority="LOWEST")  # after the checkpoint hook
        return dict(config, custom_hooks=[*config["custom_hooks"], stop])

    with pytest.raises(KeyboardInterrupt):
        train(dataclasses.replace(SEG, runner_config=with_stop), settings, 0, [source], synthetic, out, curves, wip)
    (work,) = wip.iterdir()
    assert (work / "iter_2.pth").is_file() and not out.exists()
    summary = train(SEG, settings, 0, [source], synthetic, out, curves, wip)
    assert "(resumed)" in summary and not work.exists()
    steps = pd.read_csv(curves / "plots/metrics/loss.tsv", sep="\t")["step"].tolist()
    assert steps == [1, 2, 3, 4]  # iterations 3 and 4 appended to the killed run's curve
    state = torch.load(out / "model.pth", weights_only=True)
    assert any(key.startswith("backbone.") for key in state)


def test_mixed_precision_on_cuda_only_and_by_default(monkeypatch):
    common = {"arch": "tiny", "pretrained": None, "iters": 2, "batch": 2, "scale": [64, 32], "crop": [32, 32],
              "lr": 0.001, "weight_decay": 0.0, "warmup": 1, "workers": 0, "checkpoint_every": 2}  # fmt: skip
    assert load_settings({"common": common}, "source", METHODS).amp is True
    with pytest.raises(InputError, match="train.common.amp"):
        load_settings({"common": {**common, "amp": "yes"}}, "source", METHODS)
    assert precision(True, cuda=False) == precision(False, cuda=True) == {"type": "OptimWrapper"}
    for bf16, dtype in ((True, "bfloat16"), (False, "float16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        assert precision(True, cuda=True) == {"type": "AmpOptimWrapper", "dtype": dtype}
