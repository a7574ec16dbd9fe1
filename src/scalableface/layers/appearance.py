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


# Nearest 2x upsampling followed by a 3x3 convolution, per output phase (row parity a, column parity
# b): kernel rows fold onto two input rows, [[1, 0, 0], [0, 1, 1]] for a = 0 (rows i-1, i) and
# [[1, 1, 0], [0, 0, 1]] for a = 1 (rows i, i+1), and the same for columns.
_FOLD = (((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def upsampled_conv(x: torch.Tensor, conv: nn.Conv2d, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """conv(nearest-upsample-2x(x)) computed at the input's resolution: one 2x2 convolution with
    the four phases' folded kernels (phase_kernel) over x padded by 1, the phases interleaved. The
    same sums as the upsampled 3x3 convolution, grouped differently: 16 instead of 36
    multiply-adds per input pixel and channel pair."""
    kernel = phase_kernel(conv.weight) if kernel is None else kernel
    n, _, h, w = x.shape
    co = conv.out_channels
    out = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1)), kernel, conv.bias.repeat(4))
    out = out.view(n, 2, 2, co, h + 1, w + 1)  # phase (a, b) sits at offset (a, b)
    rows = [torch.stack([out[:, a, b, :, a : a + h, b : b + w] for b in range(2)], -1) for a in range(2)]
    return torch.stack(rows, 3).reshape(n, co, 2 * h, 2 * w)  # n, co, h, a, w, b -> interleaved


def phase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """(4 cout) x cin x 2 x 2: the 3x3 kernel folded for each phase (a, b), phases outermost."""
    fold = weight.new_tensor(_FOLD)
    return torch.cat([fold[a] @ weight @ fold[b].T for a in range(2) for b in range(2)])


class _Up(nn.Module):
    """Nearest 2x upsampling, then `convs` 3x3 convolutions; body keeps the layers in that order
    (the model files' names), and forward runs the upsampling and the first one as upsampled_conv."""

    def __init__(self, cin: int, cout: int, convs: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
        for i in range(convs):
            layers += [_conv(cin if i == 0 else cout, cout), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self._folded: tuple | None = None  # (weight version, kernel) while the weights stay as they are

    def forward(self, x):
        h = upsampled_conv(x, self.body[1], self._kernel())
        for layer in self.body[2:]:
            h = layer(h)
        return h

    def _kernel(self) -> torch.Tensor:
        w = self.body[1].weight
        if torch.is_grad_enabled():  # training: the fold is part of the graph
            return phase_kernel(w)
        key = (w.data_ptr(), w._version)
        if self._folded is None or self._folded[0] != key:
            with torch.no_grad():  # a plain tensor, usable in and out of inference mode
                self._folded = (key, phase_kernel(w))
        return self._folded[1]


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
