"""pipeline.mm, the adapter for the OpenMMLab stack: trusted checkpoint loading (resume through a real Runner),
weights-only loading everywhere else, configs shipped inside the packages, and mmcv's compiled ops."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, HOOKS, MODELS
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn
from torch.utils.data import Dataset

from pipeline import mm

pytestmark = pytest.mark.mm

BATCH = 2


class DgsynthToyModel(BaseModel):
    """mmengine's test model: one linear layer, an MSE loss."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        outputs = self.linear(inputs).squeeze(-1)
        if mode == "loss":
            return dict(loss=((outputs - data_samples) ** 2).mean())
        return outputs


class DgsynthToyDataset(Dataset):
    """16 fixed samples: enough for 6 iterations of batch 2, so the infinite loader never restarts (and sleeps)."""

    METAINFO: dict = dict()

    def __init__(self, size: int = 16):
        generator = torch.Generator().manual_seed(1)
        self.inputs = torch.randn(size, 2, generator=generator)
        self.targets = self.inputs @ torch.tensor([1.5, -2.0]) + 0.5

    @property
    def metainfo(self):
        return self.METAINFO

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return dict(inputs=self.inputs[index], data_samples=self.targets[index])


class DgsynthRecordHook(Hook):
    """Records where training starts and the weights it starts from (after any resume)."""

    seen: list[tuple[int, dict[str, torch.Tensor]]] = []

    def before_train(self, runner) -> None:
        weights = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
        DgsynthRecordHook.seen.append((runner.iter, weights))


MODELS.register_module(module=DgsynthToyModel, force=True)
DATASETS.register_module(module=DgsynthToyDataset, force=True)
HOOKS.register_module(module=DgsynthRecordHook, force=True)


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch):
    """Each test starts with no trusted folder (the module keeps a process-wide list) and mm's loader installed."""
    monkeypatch.setattr(mm, "_TRUSTED", [])
    monkeypatch.setattr(DgsynthRecordHook, "seen", [])
    mm.setup()


def make_runner(work_dir: Path, max_iters: int, name: str, **kwargs) -> Runner:
    return Runner(
        model=dict(type="DgsynthToyModel"),
        work_dir=str(work_dir),
        experiment_name=f"{name}-{work_dir.parent.name}",  # global mmengine instances (logger, visualizer) per name
        train_dataloader=dict(
            dataset=dict(type="DgsynthToyDataset"),
            sampler=dict(type="DefaultSampler", shuffle=False),
            batch_size=BATCH,
            num_workers=0,
            collate_fn=dict(type="default_collate"),
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False)),
        custom_hooks=[dict(type="DgsynthRecordHook")],
        default_scope="mmengine",
        randomness=dict(seed=0),
        **kwargs,
    )


@pytest.fixture
def trained(tmp_path) -> Path:
    """A work dir after 4 iterations: iter_2.pth, iter_4.pth and last_checkpoint."""
    work_dir = tmp_path / "work"
    runner = make_runner(work_dir, 4, "first")
    runner.train()
    assert runner.iter == 4
    assert (work_dir / "iter_2.pth").is_file() and (work_dir / "iter_4.pth").is_file()
    return work_dir


def test_setup_installs_the_local_loader_idempotently():
    mm.setup()
    mm.setup()
    assert CheckpointLoader._get_checkpoint_loader("/some/file.pth") is mm._load_local_checkpoint
    # remote schemes keep their own loaders
    assert CheckpointLoader._get_checkpoint_loader("https://x/y.pth") is not mm._load_local_checkpoint


def test_resume_from_a_trusted_work_dir(trained):
    mm.trust_checkpoints_under(trained)
    (start_iter, initial_weights), = DgsynthRecordHook.seen
    assert start_iter == 0
    saved = torch.load(trained / "iter_4.pth", weights_only=False)
    assert saved["meta"]["iter"] == 4
    assert {"state_dict", "optimizer", "message_hub", "meta"} <= saved.keys()
    # training changed the weights, so equality after loading below means they were really loaded
    assert not torch.equal(saved["state_dict"]["linear.weight"], initial_weights["linear.weight"])

    DgsynthRecordHook.seen.clear()
    runner = make_runner(trained, 6, "resumed", resume=True)  # finds iter_4.pth through last_checkpoint
    runner.train()

    (start_iter, loaded_weights), = DgsynthRecordHook.seen
    assert start_iter == 4
    assert loaded_weights.keys() == saved["state_dict"].keys() == {"linear.weight", "linear.bias"}
    for key, tensor in saved["state_dict"].items():
        assert torch.equal(loaded_weights[key], tensor), key
    assert runner.iter == 6
    assert torch.load(trained / "iter_6.pth", weights_only=False)["meta"]["iter"] == 6
    # the optimizer state came back too (SGD without momentum keeps only its param groups)
    assert runner.optim_wrapper.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def test_resume_with_load_from_an_earlier_checkpoint(trained):
    mm.trust_checkpoints_under(trained)
    DgsynthRecordHook.seen.clear()
    runner = make_runner(trained, 6, "from2", resume=True, load_from=str(trained / "iter_2.pth"))
    runner.train()
    (start_iter, loaded_weights), = DgsynthRecordHook.seen
    assert start_iter == 2
    saved = torch.load(trained / "iter_2.pth", weights_only=False)["state_dict"]
    assert all(torch.equal(loaded_weights[k], v) for k, v in saved.items())
    assert runner.iter == 6


def _refused(path: Path) -> None:
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        load_checkpoint(DgsynthToyModel(), str(path))


def test_untrusted_mmengine_checkpoints_keep_weights_only(trained, tmp_path):
    # not trusted at all
    _refused(trained / "iter_4.pth")
    # trusting another folder does not help, not even one whose name is a prefix of the file's folder
    mm.trust_checkpoints_under(tmp_path / "wor")
    mm.trust_checkpoints_under(tmp_path / "elsewhere")
    _refused(trained / "iter_4.pth")
    # a copy outside the trusted folder is refused, while the original under it loads
    mm.trust_checkpoints_under(trained)
    outside = tmp_path / "outside" / "iter_4.pth"
    outside.parent.mkdir()
    shutil.copy(trained / "iter_4.pth", outside)
    _refused(outside)
    _refused(trained / ".." / "outside" / "iter_4.pth")  # `..` cannot climb into trust
    link = trained / "link.pth"
    link.symlink_to(outside)  # nor can a link placed under the trusted folder
    _refused(link)
    model = DgsynthToyModel()
    checkpoint = load_checkpoint(model, str(trained / "iter_4.pth"))
    assert checkpoint["meta"]["iter"] == 4
    assert torch.equal(model.linear.weight, checkpoint["state_dict"]["linear.weight"])


def test_untrusted_plain_state_dict_loads(tmp_path):
    source = DgsynthToyModel()
    with torch.no_grad():
        source.linear.weight.copy_(torch.tensor([[3.0, -4.0]]))
        source.linear.bias.fill_(0.25)
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    target = DgsynthToyModel()
    load_checkpoint(target, str(path))
    assert target.linear.weight.tolist() == [[3.0, -4.0]]
    assert target.linear.bias.tolist() == [0.25]


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.pth"))):
        load_checkpoint(DgsynthToyModel(), str(tmp_path / "nope.pth"))


def test_package_config():
    cfg = mm.package_config("mmseg", "_base_/models/deeplabv3plus_r50-d8.py")
    assert cfg.model.type == "EncoderDecoder"
    assert cfg.model.decode_head.type == "DepthwiseSeparableASPPHead"
    assert cfg.model.decode_head.num_classes == 19


def test_package_config_missing_names_the_path():
    with pytest.raises(FileNotFoundError, match=re.escape("_base_/models/no_such_model.py")) as error:
        mm.package_config("mmseg", "_base_/models/no_such_model.py")
    assert "mmseg" in str(error.value) and ".mim" in str(error.value)


def test_ops_status():
    assert mm.ops_status() == "ok"
