"""Segmentation training and evaluation plumbing: manifests as mmseg datasets (unlabeled rows, domain tags), paired
batches, the checked `train` section, and IoU from mmseg's IoUMetric against its own mIoU."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, DefaultScope
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

from pipeline.errors import InputError
from pipeline.labels import CLASSES
from pipeline.manifest import read_manifest, write_manifest
from pipeline.paired import PairedDataset, paired_collate
from pipeline.seg.config import METHODS, SEG, eval_pipeline, segmentor
from pipeline.seg.data import ManifestSegDataset
from pipeline.seg.evaluate import iou_from_areas
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
    """A 3-image world source domain and a synthetic manifest of its images under two conditions, one unlabeled."""
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
                      label=None if i == 1 else row["label"]) for i, row in enumerate(rows)]  # fmt: skip
    write_manifest(synthetic, project / "synthetic.parquet")
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
           [Path(s.metainfo["img_path"]).name for s in batch["data_samples"][3:]]  # fmt: skip


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
