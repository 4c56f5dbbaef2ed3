"""pipeline/det/kernels (RoIAlign, NMS) against mmcv's own CPU kernels, bit for bit, and their routing through
pipeline.mm."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from mmcv.ops import batched_nms, nms, roi_align

from pipeline import mm
from pipeline.det import kernels as ours

pytestmark = pytest.mark.mm

MMCV = importlib.import_module("mmcv.ops.roi_align")  # the module; mmcv.ops.roi_align is also the function
MMCV_NMS = importlib.import_module("mmcv.ops.nms")
POOLED = 7


@pytest.fixture(scope="module")
def kernel():
    compiled = ours.kernel()
    assert compiled is not None, "pipeline/det/kernels did not build: see the warning"
    return compiled


def mmcv_ops():
    """mmcv's compiled ops, whether or not pipeline.mm routed them."""
    return getattr(MMCV.ext_module, "ops", MMCV.ext_module)


def mmcv_nms_ops():
    """mmcv's compiled ops as mmcv.ops.nms reaches them, whether or not pipeline.mm routed them."""
    return getattr(MMCV_NMS.ext_module, "ops", MMCV_NMS.ext_module)


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
    ours.kernel().roi_align_forward(features, rois, mine, scale, sampling, aligned)
    ours.kernel().roi_align_backward(grad, rois, my_grad, scale, sampling, aligned)
    return theirs, mine, their_grad, my_grad


@pytest.fixture
def two_threads():
    """Two threads, so that the kernels split their work across threads: that must not change a bit."""
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


def test_kernels_run_on_every_thread(kernel, two_threads):
    assert kernel.parallel_threads() == 2  # built without OpenMP, at::parallel_for runs its loops on one thread
    torch.set_num_threads(1)
    assert kernel.parallel_threads() == 1


def test_no_rois(kernel):
    features = torch.randn(1, 4, 8, 8)
    theirs, mine, their_grad, my_grad = both(features, torch.zeros(0, 5), 0.25, 0, True)
    assert mine.shape == (0, 4, POOLED, POOLED) and torch.equal(my_grad, torch.zeros_like(features))


class Spy:
    """The compiled kernels, noting each call."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append(name)
            return getattr(self.kernel, name)(*args)

        return call


def test_setup_routes_average_pooling_on_the_cpu_only(kernel, monkeypatch):
    mm.setup()
    assert isinstance(MMCV.ext_module, mm._CpuKernels)
    spy = Spy(kernel)
    monkeypatch.setattr(mm, "kernel", lambda: spy)
    features = torch.randn(2, 8, 16, 16, requires_grad=True)
    rois = boxes(20, 64, 2, seed=3)
    roi_align(features, rois, POOLED, 0.25, 0, "avg", True).square().sum().backward()
    routed = features.grad.clone()
    assert spy.calls == ["roi_align_forward", "roi_align_backward"]
    roi_align(features, rois, POOLED, 0.25, 0, "max", True).sum().backward()  # max pooling: mmcv's kernel
    assert spy.calls == ["roi_align_forward", "roi_align_backward"]
    features.grad = None
    monkeypatch.setattr(MMCV, "ext_module", mmcv_ops())
    roi_align(features, rois, POOLED, 0.25, 0, "avg", True).square().sum().backward()
    assert torch.equal(features.grad, routed)


def detections(count: int, seed: int, ties: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` boxes (x1, y1, x2, y2) crowded enough to overlap, and their scores (many equal with `ties`)."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * 200
    boxes = torch.cat([corner, corner + 1 + torch.rand(count, 2, generator=generator) * 60], 1)
    if ties:
        return boxes, torch.randint(0, 10, (count,), generator=generator).float()
    return boxes, torch.rand(count, generator=generator)


@pytest.mark.parametrize("count", [1, 2, 63, 64, 65, 129, 3000])  # one word of bits, past it, and many words
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("ties", [False, True])  # equal scores: both must keep the order of the same sort
def test_nms_keeps_what_mmcv_keeps(kernel, two_threads, count, offset, ties):
    boxes, scores = detections(count, seed=count, ties=ties)
    for threshold in (0.0, 0.3, 0.7, 1.0):
        theirs = mmcv_nms_ops().nms(boxes, scores, iou_threshold=threshold, offset=offset)
        mine = kernel.nms(boxes, scores, threshold, offset)
        assert torch.equal(mine, theirs), threshold
    assert len(mine) == count  # threshold 1: no IoU is above it
    assert count < 63 or len(kernel.nms(boxes, scores, 0.0, offset)) < count / 2  # these boxes do overlap


def test_nms_of_no_boxes_and_of_degenerate_ones(kernel):
    assert kernel.nms(torch.zeros(0, 4), torch.zeros(0), 0.5, 0).tolist() == []
    boxes = torch.tensor([[5.0, 5, 5, 5], [5.0, 5, 5, 5], [0, 0, 10, 10], [float("nan"), 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    mine = kernel.nms(boxes, scores, 0.5, 0)
    assert torch.equal(mine, mmcv_nms_ops().nms(boxes, scores, iou_threshold=0.5, offset=0))
    assert mine.tolist() == [0, 1, 2, 3]  # empty boxes (IoU 0/0) and a NaN box suppress nothing


def test_setup_routes_float_nms_on_the_cpu(kernel, monkeypatch):
    mm.setup()
    spy = Spy(kernel)
    monkeypatch.setattr(mm, "kernel", lambda: spy)
    boxes, scores = detections(500, seed=7)
    classes = torch.randint(0, 3, (500,), generator=torch.Generator().manual_seed(7))
    routed = batched_nms(boxes, scores, classes, {"type": "nms", "iou_threshold": 0.5})
    assert spy.calls == ["nms"]
    monkeypatch.setattr(mm, "NMS_BOXES", 499)
    nms(boxes, scores, 0.5)  # more boxes than NMS_BOXES: mmcv's kernel
    nms(boxes[:499], scores[:499], 0.5)
    assert spy.calls == ["nms", "nms"]
    monkeypatch.setattr(MMCV_NMS, "ext_module", mmcv_nms_ops())
    theirs = batched_nms(boxes, scores, classes, {"type": "nms", "iou_threshold": 0.5})
    assert torch.equal(routed[0], theirs[0]) and torch.equal(routed[1], theirs[1])


def test_without_a_compiler_mmcv_runs_and_says_why(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ours.kernel.__wrapped__() is None
    assert "Ninja is required" in str(caught[0].message) and "mmcv's" in str(caught[0].message)


@pytest.mark.slow  # a second build, about a minute
def test_a_compiler_without_openmp_gets_a_one_thread_build_with_the_same_bits(two_threads, monkeypatch):
    import torch.utils.cpp_extension

    build = torch.utils.cpp_extension.load

    def without_openmp(*args, extra_cflags, **kwargs):  # as Apple's clang answers -fopenmp
        if ours.OPENMP in extra_cflags:
            raise RuntimeError("clang: error: unsupported option '-fopenmp'")
        return build(*args, extra_cflags=extra_cflags, **kwargs)

    monkeypatch.setattr(torch.utils.cpp_extension, "load", without_openmp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        single = ours.kernel.__wrapped__()
    assert len(caught) == 1 and "without OpenMP (RuntimeError: clang: error" in str(caught[0].message)
    assert single.parallel_threads() == 1
    monkeypatch.setattr(ours, "kernel", lambda: single)
    features = torch.randn(2, 16, 32, 48, generator=torch.Generator().manual_seed(0))
    theirs, mine, their_grad, my_grad = both(features, boxes(100, 128, 2, seed=5), 0.25, 0, True)
    assert torch.equal(mine, theirs) and torch.equal(my_grad, their_grad)
    boxes_, scores = detections(300, seed=3)
    assert torch.equal(single.nms(boxes_, scores, 0.5, 0), mmcv_nms_ops().nms(boxes_, scores, iou_threshold=0.5,
                                                                               offset=0))  # fmt: skip


def test_each_checkout_and_source_has_its_own_build(tmp_path, monkeypatch):
    mine = ours.build_name()
    copies = [tmp_path / source.name for source in ours.SOURCES]  # the same sources in another checkout
    for source, copy in zip(ours.SOURCES, copies):
        copy.write_bytes(source.read_bytes())
    monkeypatch.setattr(ours, "SOURCES", copies)
    other_checkout = ours.build_name()
    copies[1].write_text(copies[1].read_text() + "// changed\n")
    assert len({mine, other_checkout, ours.build_name()}) == 3
    monkeypatch.undo()
    assert ours.build_name() == mine and mine.startswith("dgsynth_kernels_")
    assert ours.build_name(openmp=False) != mine
