"""Detector configs as plain dicts: the papers' Faster R-CNNs for GPU users, small ones for the embedded default.

The GPU settings start from the model configs mmdet ships (`_base_/models/faster-rcnn_r50_fpn.py` and
`faster-rcnn_r50-caffe-c4.py`, loaded by path through `pipeline.mm.package_config`), with the depth, the class count
and the backbone weights set here:
- `faster-rcnn-r101-c4`: ResNet-101 C4 (DRSF's released setting; caffe style, frozen BN, stage 1 frozen);
- `faster-rcnn-r50-fpn`, `faster-rcnn-r101-fpn`: ResNet + FPN (mmdet's standard).
Their backbones take ImageNet weights from `pretrained` (`det.common.pretrained`: a local file or torch hub's cache;
nothing is downloaded; `pipeline.training.settings.resolve_pretrained` says where it looked), else random weights.
- `faster-rcnn-r18-fpn-small` (the embedded default, CPU): ResNet-18 at half width (32 base channels), trainable BN,
  an FPN of 64 channels, one anchor scale, 128 RPN and 128 RoI samples per image, 300 proposals, 2 x 256 FC RoI head:
  about 3.5 M parameters, random init.
- `tiny`: the same at a quarter of the widths, for tests.
"""

from __future__ import annotations

from pipeline import mm

SMALL_TRAIN = dict(rpn_sampler=128, rpn_pre=1000, proposals=300, rcnn_sampler=128)


def _fpn(depth: int) -> dict:
    model = mm.package_config("mmdet", "_base_/models/faster-rcnn_r50_fpn.py").model.to_dict()
    model["backbone"]["depth"] = depth
    model["backbone"]["init_cfg"] = None
    return model


def _c4(depth: int) -> dict:
    model = mm.package_config("mmdet", "_base_/models/faster-rcnn_r50-caffe-c4.py").model.to_dict()
    model["backbone"]["depth"] = model["roi_head"]["shared_head"]["depth"] = depth
    model["backbone"]["init_cfg"] = model["roi_head"]["shared_head"]["init_cfg"] = None
    return model


def _small(width: int, fpn: int, fc: int) -> dict:
    """Faster R-CNN on a ResNet-18 of `width` base channels, an FPN of `fpn` channels and `fc`-wide FC layers."""
    model = _fpn(18)
    model["data_preprocessor"] |= dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    model["backbone"] |= dict(base_channels=width, stem_channels=width, frozen_stages=-1, norm_eval=False)
    model["neck"] |= dict(in_channels=[width * 2**i for i in range(4)], out_channels=fpn)
    model["rpn_head"] |= dict(in_channels=fpn, feat_channels=fpn)
    model["rpn_head"]["anchor_generator"]["scales"] = [8]
    roi = model["roi_head"]
    roi["bbox_roi_extractor"]["out_channels"] = fpn
    roi["bbox_head"] |= dict(in_channels=fpn, fc_out_channels=fc)
    train, test = model["train_cfg"], model["test_cfg"]
    train["rpn"]["sampler"]["num"] = SMALL_TRAIN["rpn_sampler"]
    train["rpn_proposal"] |= dict(nms_pre=SMALL_TRAIN["rpn_pre"], max_per_img=SMALL_TRAIN["proposals"])
    train["rcnn"]["sampler"]["num"] = SMALL_TRAIN["rcnn_sampler"]
    test["rpn"] |= dict(nms_pre=SMALL_TRAIN["rpn_pre"], max_per_img=SMALL_TRAIN["proposals"])
    return model


ARCHS = {
    "faster-rcnn-r101-c4": lambda: _c4(101),
    "faster-rcnn-r50-fpn": lambda: _fpn(50),
    "faster-rcnn-r101-fpn": lambda: _fpn(101),
    "faster-rcnn-r18-fpn-small": lambda: _small(32, 64, 256),
    "tiny": lambda: _small(8, 16, 32),
}


def model_config(arch: str, num_classes: int, detector: dict | None = None, pretrained: str | None = None) -> dict:
    """The mmdet config of `arch` for `num_classes` classes; `detector` gives the detector type and its extra
    arguments (default: mmdet's FasterRCNN); `pretrained` a checkpoint path for the backbone."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    model = ARCHS[arch]()
    model["roi_head"]["bbox_head"]["num_classes"] = num_classes
    if pretrained:
        model["backbone"]["init_cfg"] = dict(type="Pretrained", checkpoint=str(pretrained))
    return model | (detector or {})
