"""pipeline/det/roi_align.cpp against mmcv's own CPU kernel, bit for bit, and its routing through pipeline.mm."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from mmcv.ops import roi_align

from pipeline import mm
from pipeline.det import roi_align as ours

pytestmark = pytest.mark.mm

MMCV = importlib.import_module("mmcv.ops.roi_align")  # the module; mmcv.ops.roi_align is also the function
POOLED = 7


@pytest.fixture(scope="module")
def kernel():
    compiled = ours.kernel()
    assert compiled is not None, "roi_align.cpp did not build: see the warning"
    return compiled


def mmcv_ops():
    """mmcv's compiled ops, whether or not pipeline.mm routed them."""
    return getattr(MMCV.ext_module, "ops", MMCV.ext_module)


def boxes(count: int, size: float, images: int, seed: int) -> torch.Tensor:
    """K x 5 RoIs (image, x1, y1, x2, y2) of every size, some reaching past the map, plus three of zero size."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * size * 1.2 - 0.1 * size
    extent = torch.rand(count, 2, generator=generator) ** 2 * size * 0.8
    image = torch.randint(images, (count, 1), generator=generator).float()
    rois = torch.cat([image, corner, corner + extent], 1)
    return torch.cat([rois, torch.tensor([[0, 5.0, 5, 5, 5], [images - 1, 0, 0, 0, 0], [0, size, size, size, size]])])


def both(features, rois, scale, sampling, aligned):
    """mmcv's and our forward outputs, and both input gradients for one output gradient."""
    grad = torch.randn(len(rois), features.shape[1], POOLED, POOLED, dtype=features.dtype,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    options = dict(aligned_height=POOLED, aligned_width=POOLED, spatial_scale=scale, sampling_ratio=sampling,
                   pool_mode=1, aligned=aligned)  # fmt: skip
    empty = features.new_zeros(0)
    theirs = features.new_zeros(len(rois), features.shape[1], POOLED, POOLED)
    mmcv_ops().roi_align_forward(features, rois, theirs, empty, empty, **options)
    their_grad = torch.zeros_like(features)
    mmcv_ops().roi_align_backward(grad, rois, empty, empty, their_grad, **options)
    mine, my_grad = torch.zeros_like(theirs), torch.zeros_like(features)
    ours.kernel().forward(features, rois, mine, scale, sampling, aligned)
    ours.kernel().backward(grad, rois, my_grad, scale, sampling, aligned)
    return theirs, mine, their_grad, my_grad


@pytest.fixture
def two_threads():
    """Two threads, so that the backward pass splits channels across threads: that must not change a sum."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("stride", [4, 32])
@pytest.mark.parametrize(("sampling", "aligned"), [(0, True), (2, True), (0, False)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_bits_as_mmcv(kernel, two_threads, stride, sampling, aligned, dtype):
    features = torch.randn(3, 24, 256 // stride, 384 // stride, dtype=dtype, generator=torch.Generator().manual_seed(0))
    rois = boxes(200, 256, 3, seed=stride).to(dtype)
    theirs, mine, their_grad, my_grad = both(features, rois, 1 / stride, sampling, aligned)
    assert theirs.abs().sum() > 0 and their_grad.abs().sum() > 0  # the RoIs do cover the maps
    assert torch.equal(mine, theirs)
    assert torch.equal(my_grad, their_grad)


def test_no_rois(kernel):
    features = torch.randn(1, 4, 8, 8)
    theirs, mine, their_grad, my_grad = both(features, torch.zeros(0, 5), 0.25, 0, True)
    assert mine.shape == (0, 4, POOLED, POOLED) and torch.equal(my_grad, torch.zeros_like(features))


class Spy:
    """The compiled kernel, noting each call."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def forward(self, *args):
        self.calls.append("forward")
        self.kernel.forward(*args)

    def backward(self, *args):
        self.calls.append("backward")
        self.kernel.backward(*args)


def test_setup_routes_average_pooling_on_the_cpu_only(kernel, monkeypatch):
    mm.setup()
    assert isinstance(MMCV.ext_module, mm._ThreadedRoIAlign)
    spy = Spy(kernel)
    monkeypatch.setattr(MMCV.ext_module, "kernel", spy)
    features = torch.randn(2, 8, 16, 16, requires_grad=True)
    rois = boxes(20, 64, 2, seed=3)
    roi_align(features, rois, POOLED, 0.25, 0, "avg", True).square().sum().backward()
    routed = features.grad.clone()
    assert spy.calls == ["forward", "backward"]
    roi_align(features, rois, POOLED, 0.25, 0, "max", True).sum().backward()  # max pooling: mmcv's kernel
    assert spy.calls == ["forward", "backward"]
    features.grad = None
    monkeypatch.setattr(MMCV, "ext_module", mmcv_ops())
    roi_align(features, rois, POOLED, 0.25, 0, "avg", True).square().sum().backward()
    assert torch.equal(features.grad, routed)


def test_without_a_compiler_mmcv_runs_and_says_why(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ours.kernel.__wrapped__() is None
    assert "Ninja is required" in str(caught[0].message) and "mmcv's" in str(caught[0].message)


def test_each_checkout_and_source_has_its_own_build(tmp_path, monkeypatch):
    mine = ours.build_name()
    copy = tmp_path / "roi_align.cpp"  # the same source in another checkout
    copy.write_bytes(ours.SOURCE.read_bytes())
    monkeypatch.setattr(ours, "SOURCE", copy)
    other_checkout = ours.build_name()
    copy.write_text(copy.read_text() + "// changed\n")
    assert len({mine, other_checkout, ours.build_name()}) == 3
    monkeypatch.undo()
    assert ours.build_name() == mine and mine.startswith("dgsynth_roi_align_")
