"""The mean-teacher methods: EMA teacher and ClassMix (teacher.py), DIDEX's DACS adaptation, DiGA's distillation."""

from __future__ import annotations

import math

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, HOOKS
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from torch import nn
from torch.utils.data import Dataset

from pipeline.adapt import teacher as adapt_teacher
from pipeline.paired import split_batch
from pipeline.seg.methods import didex, diga, teacher
from pipeline.seg.models import model_config

pytestmark = pytest.mark.mm

SIZE = 64


@pytest.fixture(scope="module", autouse=True)
def mmseg_scope():
    register_all_modules(init_default_scope=True)


def test_ema_update_mixes_params_and_copies_buffers():
    student, student_teacher = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
    student_teacher.requires_grad_(False)
    nn.init.constant_(student_teacher.weight, 1.0)
    nn.init.constant_(student.weight, 3.0)
    student.running_mean.fill_(7.0)
    adapt_teacher.ema_update(student_teacher, student, 0.9)
    assert torch.allclose(student_teacher.weight, torch.full((2,), 1.2))
    assert torch.equal(student_teacher.running_mean, torch.full((2,), 7.0))
    assert not student_teacher.weight.requires_grad


def test_momentum_schedule():
    assert adapt_teacher.ema_momentum(0, 0.999) == 0
    assert adapt_teacher.ema_momentum(9, 0.999) == pytest.approx(0.9)
    assert adapt_teacher.ema_momentum(10**6, 0.999) == 0.999


def test_class_mix_mask_takes_half_the_classes_whole():
    label = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3], [255, 255, 0, 1], [2, 3, 255, 0]])[None]
    mask = teacher.class_mix_mask(label, torch.Generator().manual_seed(0))[0]
    chosen = {c for c in range(4) if mask[label[0] == c].all()}
    assert len(chosen) == 2
    assert torch.equal(mask.bool(), torch.isin(label[0], torch.tensor(sorted(chosen))))
    again = teacher.class_mix_mask(label, torch.Generator().manual_seed(0))[0]
    assert torch.equal(mask, again)


def test_symmetric_kd_by_hand_and_no_teacher_grad():
    # 1 pixel, 2 classes. Teacher clean logits (0, 0) -> P = (1/2, 1/2); teacher aug logits (log 3, 0) -> (3/4, 1/4).
    # Student aug logits (0, log 3) -> log q = (log 1/4, log 3/4); student clean (0, 0) -> log q = (log 1/2, log 1/2).
    # L = -(1/2 log 1/4 + 1/2 log 3/4) + 0.5 * -(3/4 log 1/2 + 1/4 log 1/2) = 0.8369882 + 0.3465736
    t_clean = torch.tensor([0.0, 0.0]).view(1, 2, 1, 1).requires_grad_()
    t_aug = torch.tensor([math.log(3), 0.0]).view(1, 2, 1, 1).requires_grad_()
    s_clean = torch.tensor([0.0, 0.0]).view(1, 2, 1, 1).requires_grad_()
    s_aug = torch.tensor([0.0, math.log(3)]).view(1, 2, 1, 1).requires_grad_()
    loss = diga.symmetric_kd(t_clean, t_aug, s_clean, s_aug)
    assert loss.item() == pytest.approx(1.1835618, abs=1e-6)
    loss.backward()
    assert t_clean.grad is None and t_aug.grad is None
    assert s_clean.grad is not None and s_aug.grad.abs().sum() > 0


def test_prototype_agreement_drops_pixels_nearer_another_class():
    prototypes = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    features = torch.tensor([[1.0, 9.0], [1.0, 9.0]]).view(1, 2, 1, 2)  # pixel 0 at (1, 1), pixel 1 at (9, 9)
    label = diga.prototype_agreement(torch.zeros(1, 1, 2, dtype=torch.long), features, prototypes)
    assert label.tolist() == [[[0, 255]]]


def test_update_prototypes_ema_and_first_sighting():
    prototypes = torch.tensor([[0.0, 0.0], [math.nan, math.nan]])
    features = torch.tensor([[2.0, 4.0], [2.0, 6.0]]).view(1, 2, 1, 2)  # pixels (2, 2) and (4, 6)
    updated = diga.update_prototypes(prototypes, features, torch.tensor([[[0, 1]]]), momentum=0.5)
    assert updated.tolist() == [[1.0, 1.0], [4.0, 6.0]]


def test_dacs_quality_weight():
    probs = torch.tensor([[0.99, 0.97, 0.98, 0.6], [0.01, 0.03, 0.02, 0.4]]).view(1, 2, 2, 2)
    pseudo, weight = didex.dacs_pseudo_labels(probs, 0.968)
    assert weight.tolist() == [0.75]
    assert pseudo.tolist() == [[[0, 0], [0, 0]]]


def samples(synthetic_label: int, labeled: bool) -> list[SegDataSample]:
    generator = torch.Generator().manual_seed(3)
    out = []
    for i in range(4):
        domain = "source" if i < 2 else "synthetic"
        if domain == "source":
            label = torch.randint(0, 4, (1, SIZE, SIZE), generator=generator)
        else:
            label = torch.full((1, SIZE, SIZE), synthetic_label)
        sample = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                                             domain=domain, labeled=domain == "source" or labeled,
                                             pseudo_domain=int(i >= 2)))  # fmt: skip
        sample.gt_sem_seg = PixelData(data=label)
        out.append(sample)
    return out


def config(segmentor: str, **kwargs) -> dict:
    # model_config(segmentor=dict(type=...)) raises "multiple values for 'type'" (pipeline/seg/models.py)
    return model_config("tiny", segmentor=kwargs) | dict(type=segmentor)


def build(segmentor: str, **kwargs):
    torch.manual_seed(0)
    model = MODELS.build(config(segmentor, **kwargs))
    model.init_weights()
    return model.train()


def images():
    return torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))


def check_grads_and_teacher_update(model, loss):
    loss.backward()
    assert all(p.grad is not None for p in model.decode_head.conv_seg.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert not model.teacher.training
    before = [p.clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    model.update_teacher(9)  # momentum 0.9: the teacher moves a tenth of the way
    moved = [(p - b).abs().max().item() for p, b in zip(model.teacher.parameters(), before, strict=True)]
    assert max(moved) == pytest.approx(0.1, abs=1e-5) and min(moved) == pytest.approx(0.1, abs=1e-5)


def test_didex_losses_ignore_synthetic_labels():
    model = build("DIDEXSegmentor", mic_mask_ratio=0.5, pseudo_threshold=0.05)
    results = []
    for synthetic_label in (5, 255):
        torch.manual_seed(1)
        results.append(model.loss(images(), samples(synthetic_label, labeled=False)))
    losses, other = results
    assert {"decode.loss_ce", "decode.acc_seg", "loss_mix", "loss_mic", "pseudo_weight"} <= set(losses)
    for key in ("decode.loss_ce", "loss_mix", "loss_mic"):
        assert torch.isfinite(losses[key]) and losses[key] > 0
        assert losses[key].item() == other[key].item()
    assert losses["pseudo_weight"].item() == 1.0  # threshold 0.05 < 1/19: every pixel counts, so labels would matter
    check_grads_and_teacher_update(model, losses["decode.loss_ce"] + losses["loss_mix"] + losses["loss_mic"])


@pytest.mark.parametrize("labeled", [True, False])
def test_diga_losses(labeled):
    model = build("DiGASegmentor", iters=10, proto_warmup=0.0)
    torch.manual_seed(1)
    losses = model.loss(images(), samples(2, labeled=labeled))
    assert {"decode.loss_ce", "decode.acc_seg", "loss_mix", "loss_kd"} <= set(losses)
    for key in ("decode.loss_ce", "loss_mix", "loss_kd"):
        assert torch.isfinite(losses[key]) and losses[key] > 0
    seen = ~model.prototypes.isnan().any(1)
    assert seen.tolist() == [True] * 4 + [False] * 15  # the source labels hold classes 0..3
    if labeled:  # the synthetic label (class 2) enters the mixed label: a different label changes loss_mix
        torch.manual_seed(1)
        assert model.loss(images(), samples(3, labeled=True))["loss_mix"].item() != losses["loss_mix"].item()
    check_grads_and_teacher_update(model, losses["decode.loss_ce"] + losses["loss_mix"] + losses["loss_kd"])


def recorded_loss(segmentor: str, seed: int, **kwargs):
    """A new `segmentor`'s losses on unlabeled synthetic images, with the inputs of every student and teacher
    forward: (model, student inputs, teacher inputs)."""
    model = build(segmentor, **kwargs)
    student, teacher_inputs = [], []
    student_logits, teacher_forward = model.student_logits, model.teacher_forward
    model.student_logits = lambda x: student.append(x.detach().clone()) or student_logits(x)
    model.teacher_forward = lambda x: teacher_inputs.append(x.clone()) or teacher_forward(x)
    torch.manual_seed(seed)
    model.loss(images(), samples(2, labeled=False))
    return model, student, teacher_inputs


def test_didex_student_sees_a_strongly_augmented_mix_not_the_teachers_view():
    _, student, teacher_inputs = recorded_loss("DIDEXSegmentor", 2, mic_mask_ratio=0.7, mic_block=16)
    source, target = images()[:2], images()[2:]
    (teacher_view,), (mixed, masked) = teacher_inputs, student
    assert torch.equal(teacher_view, target)  # the teacher labels the clean synthetic images
    # ClassMix takes every pixel from the source or the target; the strong augmentation changes almost all of them
    unchanged = (mixed == source) | (mixed == target)
    assert unchanged.float().mean().item() < 0.01
    kept = masked != 0  # MIC: zeroed blocks, and the rest colour-augmented, unlike the teacher's view
    assert 0.1 < kept.float().mean().item() < 0.6
    assert not torch.allclose(masked[kept], target[kept])


def test_diga_distils_between_the_source_and_its_cross_domain_mixture():
    model, student, teacher_inputs = recorded_loss("DiGASegmentor", 1, iters=10, proto_warmup=0.5)
    source, synthetic = images()[:2], images()[2:]
    (views,) = student  # one student batch: [x, x_mix]
    assert torch.equal(views[:2], source)
    mixed = views[2:]
    from_synthetic = (mixed == synthetic).all(1)  # ClassMix: the rest is beta A(x) + (1 - beta) x, not x
    assert 0.1 < from_synthetic.float().mean().item() < 0.9
    assert not torch.isclose(mixed, source).all(1)[~from_synthetic].any()
    assert torch.equal(teacher_inputs[-1], mixed)  # the teacher's view of the mixture supervises S(x)
    assert model.prototypes.isnan().all()  # warm-up: 5 of 10 iterations before the prototypes are collected
    assert (model.synthetic_labels(split_batch(images(), samples(2, labeled=False))).cpu() == 255).all()
    model.update_teacher(4)
    assert model.warmed_up()
    model.loss(images(), samples(2, labeled=False))
    assert (~model.prototypes.isnan().any(1)).sum().item() == 4  # the source labels' classes 0..3


@DATASETS.register_module()
class DgsynthPairedToyDataset(Dataset):
    """8 samples: source, source, synthetic, synthetic, twice; batch 4 = 2 source + 2 synthetic, 2 iterations."""

    METAINFO: dict = dict()

    def __init__(self):
        generator = torch.Generator().manual_seed(2)
        self.images = torch.randint(0, 256, (8, 3, 32, 32), generator=generator, dtype=torch.uint8)
        self.labels = torch.randint(0, 3, (8, 1, 32, 32), generator=generator)

    @property
    def metainfo(self):
        return self.METAINFO

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        synthetic = index % 4 >= 2
        sample = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32),
                                             domain="synthetic" if synthetic else "source", labeled=True,
                                             pseudo_domain=int(synthetic)))  # fmt: skip
        sample.gt_sem_seg = PixelData(data=self.labels[index])
        return dict(inputs=self.images[index], data_samples=sample)


@HOOKS.register_module()
class DgsynthTeacherRecordHook(Hook):
    """Records (teacher, student) decode-head classifier weights after each iteration, after EMATeacherHook."""

    priority = "LOW"
    records: list = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model
        self.records.append((model.teacher["decode_head"].conv_seg.weight.clone(),
                             model.decode_head.conv_seg.weight.detach().clone()))  # fmt: skip


def test_mean_teacher_hook_updates_the_teacher_each_iteration(tmp_path):
    DgsynthTeacherRecordHook.records.clear()
    runner = Runner(
        model=config("DIDEXSegmentor"),
        work_dir=str(tmp_path),
        experiment_name=f"teacher-hook-{tmp_path.name}",
        train_dataloader=dict(dataset=dict(type="DgsynthPairedToyDataset"),
                              sampler=dict(type="DefaultSampler", shuffle=False), batch_size=4, num_workers=0,
                              collate_fn=dict(type="pseudo_collate")),  # fmt: skip
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False)),
        custom_hooks=[dict(type="EMATeacherHook"), dict(type="DgsynthTeacherRecordHook")],
        default_scope="mmseg",
        randomness=dict(seed=0),
    )
    runner.train()
    (teacher0, student0), (teacher1, student1) = DgsynthTeacherRecordHook.records
    assert torch.equal(teacher0, student0)  # iteration 0: momentum 0, the teacher is the stepped student
    assert not torch.equal(student1, student0)
    assert torch.allclose(teacher1, 0.5 * teacher0 + 0.5 * student1, atol=1e-7)  # iteration 1: momentum 1/2
