"""3D ResNets with SlowOnly-style temporal inflation (Feichtenhofer et al., SlowFast, 2019).

Every convolution is 2D-shaped (temporal kernel 1) except the first convolution of each block in res4 and
res5, which has temporal kernel 3; the stem is 1x7x7 (``stem_frames`` widens it in time) and nothing strides
in time, so T frames in give T feature maps out. That is the 3D-ResNet-50 of the ActNetFormer table: 31.84 M
parameters at 101 classes (Hara et al.'s all-3x3x3 variant has 46.4 M). Module names follow torchvision's ResNet
(``conv1``, ``bn1``, ``layer1.0.conv2``, ``fc``...), so a 2D ImageNet checkpoint inflates into it name for name
(``actnet.models.pretrained``).

Input ``(B, 3, T, H, W)``; ``forward_features`` pools to ``(B, num_features)``; ``forward_head`` is dropout
and the linear classifier.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, kt: int, k: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, (kt, k, k), stride=(1, stride, stride), padding=(kt // 2, k // 2, k // 2), bias=False)


class BasicBlock3d(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, temporal: bool, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3 if temporal else 1, 3, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv(planes, planes, 1, 3)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm3d:
        return self.bn2


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, temporal: bool, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3 if temporal else 1, 1)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv(planes, planes, 1, 3, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = _conv(planes, planes * 4, 1, 1)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm3d:
        return self.bn3


BLOCKS = {"basic": BasicBlock3d, "bottleneck": Bottleneck3d}


class ResNet3d(nn.Module):
    """A SlowOnly-style 3D ResNet: ``layers`` blocks per stage, stage widths ``width * (1, 2, 4, 8)``."""

    def __init__(
        self,
        block: str = "bottleneck",
        layers: tuple[int, ...] = (3, 4, 6, 3),
        num_classes: int = 400,
        width: int = 64,
        temporal_stages: tuple[bool, ...] = (False, False, True, True),
        drop_rate: float = 0.0,
        zero_init_residual: bool = True,
        stem_frames: int = 1,
    ):
        super().__init__()
        block_cls = BLOCKS[block]
        if stem_frames < 1 or stem_frames % 2 == 0:
            raise ValueError(f"stem_frames must be odd and positive, not {stem_frames}")
        kt = stem_frames  # 1: SlowOnly's 1x7x7 stem; 3 or 5: the stem sees motion at full resolution (I3D: 7)
        self.conv1 = nn.Conv3d(3, width, (kt, 7, 7), stride=(1, 2, 2), padding=(kt // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = width
        for i, (blocks, temporal) in enumerate(zip(layers, temporal_stages)):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block_cls.expansion:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes * block_cls.expansion, 1, stride=(1, stride, stride), bias=False),
                    nn.BatchNorm3d(planes * block_cls.expansion),
                )
            stage = [block_cls(inplanes, planes, stride, temporal, downsample)]
            inplanes = planes * block_cls.expansion
            stage += [block_cls(inplanes, planes, 1, temporal, None) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.num_stages = len(layers)
        self.num_features = inplanes
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(inplanes, num_classes)
        self._init(zero_init_residual)

    def _init(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        if zero_init_residual:  # each residual block starts as the identity (Goyal et al., 2017)
            for m in self.modules():
                if isinstance(m, BasicBlock3d | Bottleneck3d):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.pool(x).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
