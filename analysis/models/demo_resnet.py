"""The small ResNet used for the built-in benchmark ("demo model").

Four residual stages of widths ``w, 2w, 4w, 8w``.  The stem is a stride-2 3x3
convolution and stages 2 and 3 halve the resolution, so at 64 px input the last
convolutional map is 8x8 (NAMs and LRP heatmaps need >= 8x8).
"""
from __future__ import annotations

import torch
from torch import nn

DEMO_ARCH = "salient_demo_resnet"

#: Strides of the stem and of the four stages; total downsampling factor 8.
STEM_STRIDE = 2
STAGE_STRIDES = (1, 2, 2, 1)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity/projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SmallResNet(nn.Module):
    """Compact 4-stage ResNet with ``layer1``..``layer4``, ``avgpool`` and ``fc``.

    Parameters
    ----------
    num_classes : int
        Number of output classes.
    width : int
        Channels of the first stage; later stages use 2x, 4x and 8x.
    blocks_per_stage : int
        Residual blocks in each stage.

    Notes
    -----
    Module names follow torchvision's ResNet (``layer4``, ``fc``) so evidence code
    treats it like any other ResNet.
    """

    def __init__(self, num_classes: int = 10, width: int = 32, blocks_per_stage: int = 1) -> None:
        super().__init__()
        if width < 1 or num_classes < 1 or blocks_per_stage < 1:
            raise ValueError("num_classes, width and blocks_per_stage must be positive")
        self.conv1 = nn.Conv2d(3, width, 3, STEM_STRIDE, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        channels = [width, 2 * width, 4 * width, 8 * width]
        in_channels = width
        for stage, (out_channels, stride) in enumerate(zip(channels, STAGE_STRIDES), start=1):
            blocks = []
            for block in range(blocks_per_stage):
                blocks.append(BasicBlock(in_channels, out_channels, stride if block == 0 else 1))
                in_channels = out_channels
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def last_map_size(input_size: int) -> int:
    """Spatial side of the last convolutional map for a square input of ``input_size``."""
    size = input_size
    for stride in (STEM_STRIDE, *STAGE_STRIDES):
        size = (size + stride - 1) // stride
    return size


def salient_demo_resnet(num_classes: int = 10, width: int = 32, blocks_per_stage: int = 1) -> SmallResNet:
    """Factory registered under :data:`DEMO_ARCH`."""
    return SmallResNet(num_classes=num_classes, width=width, blocks_per_stage=blocks_per_stage)
