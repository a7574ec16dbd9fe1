"""The appearance half of the base layer: an appearance encoder (crop -> a few dozen latent numbers)
and a generator (descriptor + appearance latent -> 128x128 face). Torch modules shared by training
(train/texture.py) and run time (layers/base.py).

The appearance latent is entropy-coded like the identity latent (integer tables, section 3.1 of
bitstream_spec.md); its symbols q become the latent q + median that the generator sees.
"""

from __future__ import annotations

import torch
from torch import nn

from ..canonical import DESCRIPTOR_DIM


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class AppearanceEncoder(nn.Module):
    """N x 3 x 128 x 128 in [0, 1] -> N x latent."""

    def __init__(self, latent: int = 64, width: int = 32):
        super().__init__()
        chans = [3, width, 2 * width, 3 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [_conv(a, b, stride=2), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)  # 128 -> 4
        self.head = nn.Linear(chans[-1] * 4 * 4, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5).flatten(1))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, convs: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
        for i in range(convs):
            layers += [_conv(cin if i == 0 else cout, cout), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class Generator(nn.Module):
    """(N x 128 descriptor, N x latent appearance) -> N x 3 x 128 x 128 in [0, 1]."""

    DESCRIPTOR_SCALE = 10.0  # descriptor entries are ~0.1

    def __init__(self, latent: int = 64, width: int = 32):
        super().__init__()
        self.width = width
        self.fc = nn.Linear(DESCRIPTOR_DIM + latent, 8 * width * 4 * 4)
        self.ups = nn.Sequential(
            _Up(8 * width, 6 * width, 2),  # 8
            _Up(6 * width, 4 * width, 2),  # 16
            _Up(4 * width, 3 * width, 2),  # 32
            _Up(3 * width, 2 * width, 1),  # 64
            _Up(2 * width, width, 1),  # 128
        )
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, descriptor: torch.Tensor, appearance: torch.Tensor) -> torch.Tensor:
        z = torch.cat([descriptor * self.DESCRIPTOR_SCALE, appearance], dim=1)
        h = nn.functional.leaky_relu(self.fc(z), 0.2).view(-1, 8 * self.width, 4, 4)
        return torch.sigmoid(self.to_rgb(self.ups(h)))
