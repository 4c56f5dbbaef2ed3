"""DRSF's DFDR and MDSF (pipeline.adapt, pipeline.seg.methods.drsf): entropy, gradient reversal, soft labels,
interpolation pairs, the segmentor."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

from pipeline.adapt.dfdr import DFDR, channel_entropy
from pipeline.adapt.mdsf import domain_classes, grad_reverse, mixing_pairs, soft_domain_labels
from pipeline.paired import pseudo_domain_names
from pipeline.seg.methods import drsf
from pipeline.seg.models import model_config

SIZE = 64
PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def test_channel_entropy_hand_values():
    features = torch.zeros(1, 3, 2, 2)
    features[0, 1, 0, 0] = 100.0  # one huge spike
    features[0, 2] = torch.tensor([[math.log(2.0), 0.0], [0.0, 0.0]])  # softmax = (2, 1, 1, 1) / 5
    entropy = channel_entropy(features)
    assert entropy.shape == (1, 3)
    assert entropy[0, 0].item() == pytest.approx(1.0, abs=1e-6)
    assert entropy[0, 1].item() < 1e-3
    p = torch.tensor([0.4, 0.2, 0.2, 0.2])
    assert entropy[0, 2].item() == pytest.approx((-(p * p.log()).sum() / math.log(4)).item(), abs=1e-6)
    assert entropy[0, 2].item() == pytest.approx(0.9609640, abs=1e-6)
    # normalised by log(H*W): a crop and a full image of the same flat map or one-spike map read the same
    assert channel_entropy(torch.zeros(1, 1, 32, 64)).item() == pytest.approx(1.0, abs=1e-6)
    spike = torch.zeros(1, 1, 64, 128)
    spike[0, 0, 5, 5] = 100.0
    assert channel_entropy(spike).item() < 1e-3 and channel_entropy(spike[..., :32, :32]).item() < 1e-3


def test_grad_reverse():
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, -0.5))


def test_soft_domain_labels():
    labels = soft_domain_labels(torch.tensor([0.25, 1.0, 0.6, 0.3]), torch.tensor([0, 0, 0, 1]),
                                torch.tensor([2, 1, 1, 2]), 3)  # fmt: skip
    expected = torch.tensor([[0.25, 0.0, 0.75], [1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.0, 0.3, 0.7]])
    assert torch.allclose(labels, expected)
    assert torch.allclose(labels.sum(1), torch.ones(4))


def test_mixing_pairs_cover_source_and_pseudo_domain_pairs():
    domains = torch.tensor([0, 0, 1, 2, 2, 3])
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        a, b = mixing_pairs(domains)
        assert a.tolist() == list(range(6))  # every element has a partner of another domain
        assert (domains[b] > 0).all() and (domains[a] != domains[b]).all()
        seen |= {(int(domains[i]), int(domains[j])) for i, j in zip(a, b)}
    assert {(0, 1), (0, 2), (0, 3)} <= seen  # source with every pseudo-domain
    assert {(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)} <= seen  # and pseudo-domains with each other
    a, _ = mixing_pairs(torch.tensor([0, 1, 1]))  # the synthetic images share one domain: only the source mixes
    assert a.tolist() == [0]
    assert len(mixing_pairs(torch.tensor([0, 0]))[0]) == 0


def test_domain_classes_group_the_words_the_generator_renders_alike():
    names = pseudo_domain_names(PARAMS["prompts"]["conditions"])
    classes, class_of = domain_classes(names, PARAMS["train"]["drsf"]["domain_groups"])
    assert classes == ["source", "clear", "dusk", "fog", "rain", "snow"]
    grouped = {name: classes[i] for name, i in zip(names, class_of.tolist(), strict=True)}
    assert grouped["source"] == "source" and grouped["fog/mist"] == grouped["haze"] == "fog"
    # the mapping is the generator's caption table: each caption word to its world condition
    captions = {word: entry["condition"] for word, entry in PARAMS["generator"]["conditions"].items()}
    assert {w: g for w, g in grouped.items() if w != "source"} == captions
    didex = pseudo_domain_names(PARAMS["profiles"]["paper"]["prompts"]["conditions"])  # Stable Diffusion's 21 words
    classes, class_of = domain_classes(didex, PARAMS["train"]["drsf"]["domain_groups"])
    assert len(classes) == 1 + 5 + 11 and classes[class_of[didex.index("night/darkness")]] == "night/darkness"


def test_segmentor_trains_its_discriminator_on_the_grouped_classes(build):
    groups = {"fog/mist": "fog", "haze": "fog"}
    model = build(num_pseudo_domains=3, conditions=["rain", "haze", "fog/mist"], domain_groups=groups)
    assert isinstance(model, drsf.DRSFSegmentor) and model.domain_names == ["source", "fog", "rain"]
    assert model.discriminator.net[-1].out_channels == 3
    inputs, samples = _batch()  # pseudo_domain 1 (fog/mist) and 2 (haze), sorted names: both fog
    seen = []
    model.discriminator.register_forward_hook(lambda module, args, out: seen.append(out))
    torch.manual_seed(0)
    model.mdsf_loss(model.extract_feat(inputs), samples)
    assert model.class_of.tolist() == [0, 1, 1, 2]
    # the 4 images and the mixes of each with a synthetic image of another class: the two synthetic images are both
    # fog now, so only the 2 source images mix (ungrouped, fog/mist and haze would mix too: 4 + 4)
    assert len(seen[0]) == 4 + 2
    with pytest.raises(ValueError, match="3 pseudo-domains but 2 conditions"):
        build(num_pseudo_domains=3)


def test_dfdr_starts_near_identity():
    torch.manual_seed(0)
    module = DFDR(16, reduction=4)
    features = torch.randn(2, 16, 8, 8)
    weights = module.weights(features)
    out = module(features)
    assert out.shape == features.shape
    assert ((weights > 0) & (weights < 1)).all()
    assert torch.allclose(weights, torch.full_like(weights, torch.sigmoid(torch.tensor(3.0)).item()))
    assert ((out - features).norm() / features.norm()).item() == pytest.approx(1 - 0.952574, abs=1e-4)


def _batch(n_source=2, n_synthetic=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n_source + n_synthetic, 3, SIZE, SIZE, generator=generator)
    samples = []
    for i in range(n_source + n_synthetic):
        source = i < n_source
        label = torch.randint(0, 19, (1, SIZE, SIZE), generator=generator)
        if not source and i % 2:  # one unlabeled (txt2img) synthetic sample
            label = torch.full((1, SIZE, SIZE), 255)
        meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                    domain="source" if source else "synthetic", labeled=source or not i % 2,
                    pseudo_domain=0 if source else 1 + i % 2)  # fmt: skip
        samples.append(SegDataSample(metainfo=meta, gt_sem_seg=PixelData(data=label)))
    return inputs, samples


@pytest.fixture(scope="module")
def build():
    register_all_modules(init_default_scope=True)

    def make(**kwargs):
        torch.manual_seed(0)
        # model_config(segmentor=dict(type=...)) raises "multiple values for 'type'" (pipeline/seg/models.py)
        segmentor = dict(num_pseudo_domains=2, conditions=["fog/mist", "rain"]) | kwargs
        config = model_config("tiny", segmentor=segmentor) | dict(type="DRSFSegmentor")
        model = MODELS.build(ConfigDict(config))  # attribute access (test_cfg.mode), as a Runner's Config gives
        model.init_weights()
        return model

    return make


def _grads(module):
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in module.parameters()])


def test_segmentor_losses_and_gradients(build):
    model = build(mdsf_weight=0.5)
    assert set(model.dfdr) == {"3"} and model.discriminator.net[-1].out_channels == 3
    inputs, samples = _batch()
    losses = model.loss(inputs, samples)
    assert {"decode.loss_ce", "decode.acc_seg", "loss_mdsf", "acc_domain"} <= set(losses)
    assert losses["loss_mdsf"].item() > 0 and 0 <= losses["acc_domain"].item() <= 100
    assert not losses["acc_domain"].requires_grad
    losses["loss_mdsf"].backward()  # MDSF alone reaches the discriminator, DFDR and the backbone
    for module in (model.discriminator, model.dfdr, model.backbone):
        assert _grads(module).abs().sum().item() > 0
    assert _grads(model.decode_head).abs().sum().item() == 0

    source_only = model.loss(*_batch(n_source=2, n_synthetic=0))
    assert "loss_mdsf" not in source_only and "acc_domain" not in source_only
    assert "loss_mdsf" not in build(use_mdsf=False).loss(inputs, samples)
    assert not build(use_dfdr=False).dfdr


def test_gradient_reversal_end_to_end(build):
    model = build(grl_scale=1.0)
    inputs, samples = _batch(seed=1)

    def disc_loss(seed=3):
        torch.manual_seed(seed)  # the same lambdas every call
        return model.mdsf_loss(model.extract_feat(inputs), samples)[0]

    model.zero_grad()
    disc_loss().backward()
    reversed_grads = _grads(model.backbone).clone()
    model.grl_scale = -1.0  # plain gradient: the backbone would help the discriminator
    model.zero_grad()
    disc_loss().backward()
    plain_grads = _grads(model.backbone)
    assert torch.dot(reversed_grads, plain_grads).item() < 0
    assert torch.allclose(reversed_grads, -plain_grads, atol=1e-6)

    model.grl_scale = 1.0
    model.eval()  # fixed BN statistics: only the optimiser steps change the loss
    before = disc_loss()
    model.zero_grad()
    before.backward()
    torch.optim.SGD(model.discriminator.parameters(), lr=0.5).step()
    after_discriminator = disc_loss()
    assert after_discriminator.item() < before.item()  # the discriminator descends its loss

    model.zero_grad()
    after_discriminator.backward()
    torch.optim.SGD(model.backbone.parameters(), lr=0.05).step()
    assert disc_loss().item() > after_discriminator.item()  # the reversed backbone step ascends it


def test_predict_shapes(build):
    model = build().eval()
    inputs, samples = _batch()
    with torch.no_grad():
        results = model.predict(inputs, samples)
    assert len(results) == 4
    for result in results:
        assert result.pred_sem_seg.data.shape == (1, SIZE, SIZE)
        assert result.pred_sem_seg.data.max().item() < 19
