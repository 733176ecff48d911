"""The demo model's network: a small CNN for 96x96 surface images (needs the `train` extra)."""

from __future__ import annotations

import torch
from torch import nn


class SurfaceNet(nn.Module):
    """Four conv blocks, then global average and max pooling side by side and one linear layer.

    Max pooling keeps the response of a defect a few pixels wide (a pit) from being diluted by
    the rest of the frame, and average pooling carries large soft patterns such as stains.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 96)) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 3
        for width in widths:
            blocks += [
                nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(2 * in_channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        return self.classifier(self.dropout(pooled))
