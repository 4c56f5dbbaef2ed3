"""Segmentation model configs as plain dicts: the papers' models for GPU users, small ones for the embedded default.

`model_config(arch, segmentor)` returns an mmseg model config for MODELS.build or a Runner. No `mmseg::` base
lookups: every field is here. BN everywhere (under torchrun each process keeps its own BN statistics). Architectures:
- `deeplabv2-r101`: ResNet-101 with DeepLabV2's ASPP classifier (four dilated 3x3 convs summed, as DiGA and DIDEX's
  GTA5 baselines use);
- `deeplabv3plus-r101`, `deeplabv3plus-r18`: DeepLabV3+ on ResNetV1c (r18 at half width for CPUs);
- `segformer-b5`, `segformer-b0`: SegFormer (MiT encoder, all-MLP head); DAFormer's context-aware fusion head is not
  in mmseg, so its MiT-B5 encoder is used with SegFormer's head;
- `tiny`: an eighth-width DeepLabV3+ for tests (about 0.1 M parameters).
"""

from __future__ import annotations

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn

from pipeline.labels import CLASSES

NORM = dict(type="BN", requires_grad=True)
PREPROCESSOR = dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)  # fmt: skip


@MODELS.register_module()
class DeepLabV2Head(BaseDecodeHead):
    """DeepLabV2's classifier: parallel dilated 3x3 convs straight to class scores, summed (Chen et al., 2017)."""

    def __init__(self, dilations=(6, 12, 18, 24), **kwargs):
        super().__init__(init_cfg=dict(type="Normal", std=0.01, layer="Conv2d"), **kwargs)
        self.branches = nn.ModuleList(
            nn.Conv2d(self.in_channels, self.num_classes, 3, padding=d, dilation=d) for d in dilations
        )
        del self.conv_seg  # the branches are the classifier

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


def _resnet(depth: int, width: int) -> dict:
    return dict(type="ResNetV1c", depth=depth, base_channels=width, stem_channels=width, num_stages=4,
                out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=NORM,
                norm_eval=False, style="pytorch", contract_dilation=True)  # fmt: skip


def _deeplabv3plus(depth: int, width: int, channels: int) -> tuple[dict, dict]:
    expansion = 4 if depth >= 50 else 1
    head = dict(type="DepthwiseSeparableASPPHead", in_channels=8 * width * expansion, in_index=3, channels=channels,
                dilations=(1, 12, 24, 36), c1_in_channels=width * expansion, c1_channels=max(channels // 10, 8),
                dropout_ratio=0.1, norm_cfg=NORM, align_corners=False)  # fmt: skip
    return _resnet(depth, width), head


def _segformer(dims: int, layers: list[int], heads: list[int], channels: int) -> tuple[dict, dict]:
    backbone = dict(type="MixVisionTransformer", in_channels=3, embed_dims=dims, num_stages=4, num_layers=layers,
                    num_heads=heads, patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
                    mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1)  # fmt: skip
    in_channels = [dims * m for m in (1, 2, 5, 8)]
    head = dict(type="SegformerHead", in_channels=in_channels, in_index=[0, 1, 2, 3], channels=channels,
                dropout_ratio=0.1, norm_cfg=NORM, align_corners=False)  # fmt: skip
    return backbone, head


ARCHS = {
    "deeplabv2-r101": lambda: (_resnet(101, 64), dict(type="DeepLabV2Head", in_channels=2048, in_index=3,
                                                      channels=2048, dropout_ratio=0, align_corners=False)),
    "deeplabv3plus-r101": lambda: _deeplabv3plus(101, 64, 512),
    "deeplabv3plus-r18": lambda: _deeplabv3plus(18, 32, 128),
    "segformer-b5": lambda: _segformer(64, [3, 6, 40, 3], [1, 2, 5, 8], 768),
    "segformer-b0": lambda: _segformer(32, [2, 2, 2, 2], [1, 2, 5, 8], 256),
    "tiny": lambda: _deeplabv3plus(18, 8, 16),
}  # fmt: skip


def model_config(arch: str, segmentor: dict | None = None, pretrained: str | None = None) -> dict:
    """The mmseg config of `arch` with 19 Cityscapes classes; `segmentor` gives the segmentor type and its extra
    arguments (default: a plain EncoderDecoder); `pretrained` a checkpoint path for the backbone."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    backbone, head = ARCHS[arch]()
    if pretrained:
        backbone["init_cfg"] = dict(type="Pretrained", checkpoint=str(pretrained))
    head |= dict(num_classes=len(CLASSES), loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False,
                                                            loss_weight=1.0))  # fmt: skip
    config = dict(type="EncoderDecoder", data_preprocessor=PREPROCESSOR, backbone=backbone, decode_head=head,
                  train_cfg=dict(), test_cfg=dict(mode="whole"))  # fmt: skip
    return config | (segmentor or {})
