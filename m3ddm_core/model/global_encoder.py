"""The light global-frame encoder: 16 VAE latents -> one sequence of 320-wide global tokens.

Five bottleneck ResNet stages (4->8->16->32->64->128 channels, the third with stride 2) and a 3x3 convolution
without padding: a ``[G, 4, 32, 32]`` latent stack becomes ``[G, 320, 14, 14]``, flattened to ``G*14*14`` tokens.
The module and parameter names follow the Hugging Face ``ResNetStage`` layout that the official checkpoints use.
BatchNorm runs in eval mode (running statistics from training).
"""
from __future__ import annotations

import torch
from torch import nn

STAGE_CHANNELS = (4, 8, 16, 32, 64, 128)
STAGE_STRIDES = (1, 1, 2, 1, 1)
LAYERS_PER_STAGE = 2
BOTTLENECK_REDUCTION = 4
TOKEN_CHANNELS = 320


class ConvNorm(nn.Module):
    """conv (no bias) -> BatchNorm -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True, device=None, dtype=None):
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False, device=device, dtype=dtype)
        self.normalization = nn.BatchNorm2d(cout, device=device, dtype=dtype)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalization(self.convolution(x))
        return torch.relu(x) if self.relu else x


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        mid = cout // BOTTLENECK_REDUCTION
        self.shortcut = ConvNorm(cin, cout, 1, stride, relu=False, **kw) if (cin != cout or stride != 1) else nn.Identity()
        self.layer = nn.Sequential(ConvNorm(cin, mid, 1, **kw), ConvNorm(mid, mid, 3, stride, **kw),
                                   ConvNorm(mid, cout, 1, relu=False, **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.layer(x) + self.shortcut(x))


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, device=None, dtype=None):
        super().__init__()
        self.layers = nn.Sequential(*[Bottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, device, dtype)
                                      for i in range(LAYERS_PER_STAGE)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GlobalFrameEncoder(nn.Module):
    """``[N, 4, h, w]`` latents -> ``[N, 320, h/2 - 2, w/2 - 2]`` feature maps."""

    def __init__(self, device=None, dtype=None):
        super().__init__()
        c = STAGE_CHANNELS
        self.resnet_layer = nn.Sequential(*[Stage(c[i], c[i + 1], STAGE_STRIDES[i], device, dtype) for i in range(len(STAGE_STRIDES))])
        self.convolution = nn.Conv2d(c[-1], TOKEN_CHANNELS, kernel_size=3, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolution(self.resnet_layer(x))
