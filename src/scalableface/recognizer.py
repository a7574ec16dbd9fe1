"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) as a PyTorch module.

The network is the one dlib's dnn_face_recognition_ex.cpp defines: a 150x150 RGB face chip in, a
128-d descriptor out; two faces are the same person when their descriptors are less than 0.6 apart.
The weights are read straight from dlib's serialized .dat file, so the port needs neither dlib nor a
converted copy of the weights, and its descriptors match dlib's own to float rounding.

Each convolution is followed by an affine layer (dlib's batch norm frozen at training's end); the
loader folds that affine into the convolution's weights and bias.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .canonical import DESCRIPTOR_DIM
from .dlib_files import dlib_model_path
from .errors import ModelError

__all__ = ["DlibResNet", "load_recognizer", "descriptor_from_crops", "describe", "dlib_model_path"]

WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
DESCRIBE_BATCH = 32

# (input channels, output channels, downsampling) of the residual blocks, input side first.
_BLOCKS = (
    [(32, 32, False)] * 3
    + [(32, 64, True)] + [(64, 64, False)] * 3
    + [(64, 128, True)] + [(128, 128, False)] * 2
    + [(128, 256, True)] + [(256, 256, False)] * 2
    + [(256, 256, True)]
)


def _padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: both tensors are zero-padded (channels, bottom, right) to the larger shape."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Block(nn.Module):
    """relu(shortcut + conv(relu(conv(x)))); a downsampling block's shortcut is a 2x2 average pool."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        # dlib pads only stride-1 convolutions.
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_padded_add(y, shortcut))


class DlibResNet(nn.Module):
    """N x 3 x 150 x 150 RGB in 0..255 (float, not normalized) -> N x 128 descriptors.

    A fresh instance has untrained weights; load_recognizer() returns one holding dlib's.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        self.blocks = nn.Sequential(*(_Block(cin, cout, down) for cin, cout, down in _BLOCKS))
        self.fc = nn.Linear(256, DESCRIPTOR_DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


@dataclass
class _Layer:
    """One layer of a serialized dlib net: its type name, parameter arrays and integer geometry."""

    kind: str
    arrays: tuple[np.ndarray, ...] = ()
    geometry: tuple[int, ...] = ()


class _Reader:
    """dlib's serialization format (dlib/serialize.h, dlib/dnn/*.h), as far as this network uses it."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelError("truncated or corrupted")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        value = int.from_bytes(self.take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def string(self) -> str:
        return self.take(self.int()).decode("latin-1")

    def bools(self, n: int) -> None:
        if any(c not in b"01" for c in self.take(n)):
            raise ModelError("bad boolean")

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ModelError("unsupported tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape)

    def alias_shape(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise ModelError("unsupported alias_tensor version")
        return tuple(self.int() for _ in range(4))

    def ints(self, n: int) -> tuple[int, ...]:
        return tuple(self.int() for _ in range(n))


def _read_layer_details(r: _Reader) -> _Layer:
    kind = r.string()
    if kind == "con_4":
        params = r.tensor().ravel()
        num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = r.ints(7)
        filters, biases = r.alias_shape(), r.alias_shape()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        n_weights = int(np.prod(filters))
        if filters[0] != num_filters or params.size != n_weights + num_filters or biases[1] != num_filters:
            raise ModelError("inconsistent convolution")
        return _Layer(
            "con",
            (params[:n_weights].reshape(filters), params[n_weights:]),
            (num_filters, filters[1], nr, nc, stride_y, stride_x, pad_y, pad_x),
        )
    if kind == "affine_":
        params = r.tensor().ravel()
        gamma, beta = r.alias_shape(), r.alias_shape()
        if r.int() != 0 or gamma != beta or params.size != 2 * gamma[1]:  # 0: one scale per channel
            raise ModelError("unsupported affine layer")
        n = gamma[1]
        return _Layer("affine", (params[:n], params[n:]))
    if kind in ("max_pool_2", "avg_pool_2"):
        return _Layer(kind[:-2], geometry=r.ints(6))
    if kind in ("relu_", "add_prev_"):
        return _Layer(kind[:-1])
    if kind == "fc_2":
        num_outputs, num_inputs = r.ints(2)
        params = r.tensor().ravel()
        weights, _ = r.alias_shape(), r.alias_shape()
        if r.int() != 1:  # 1: no bias
            raise ModelError("unsupported fully connected layer")
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        if weights[:2] != (num_inputs, num_outputs) or params.size != num_inputs * num_outputs:
            raise ModelError("inconsistent fully connected layer")
        return _Layer("fc", (params.reshape(num_inputs, num_outputs),), (num_outputs, num_inputs))
    raise ModelError(f"unsupported layer {kind!r}")


def read_net(data: bytes) -> tuple[tuple[float, float, float], list[_Layer]]:
    """The input layer's channel means and the layers of a serialized loss_metric net, input side first."""
    r = _Reader(data)
    if r.int() != 1 or r.string() != "loss_metric_2":
        raise ModelError("not a dlib metric-learning network")
    for _ in range(2):  # margin and distance threshold, used only in training
        r.float()
    # add_layer writes its version (2) then its subnetwork before its own layer, so the versions of
    # all the layers, tags and skips (1) come first, down to the layer on the input (3).
    while (version := r.int()) != 3:
        if version not in (1, 2):
            raise ModelError("unexpected layer version")
    if r.string() != "input_rgb_image_sized":
        raise ModelError("unsupported input layer")
    mean = (r.float(), r.float(), r.float())
    if r.ints(2) != (CHIP_SIZE, CHIP_SIZE):
        raise ModelError("unexpected input size")
    layers = []
    while r.pos < len(data):
        layers.append(_read_layer_details(r))
        r.bools(3)  # add_layer's bookkeeping flags
        for _ in range(3):  # gradient and output buffers, empty in a saved net
            r.tensor()
        if len(layers) == 1:  # the layer on the input also saves the sample expansion factor
            r.int()
    return mean, layers


def _load_weights(model: DlibResNet, mean: tuple[float, float, float], layers: list[_Layer]) -> None:
    it = iter(layers)

    def take(kind: str, geometry: tuple[int, ...] | None = None) -> _Layer:
        layer = next(it, None)
        if layer is None or layer.kind != kind or (geometry is not None and layer.geometry != geometry):
            found = "the end" if layer is None else f"{layer.kind} {layer.geometry}"
            raise ModelError(f"expected {kind} {geometry or ''}, found {found}")
        return layer

    def conv_affine(conv: nn.Conv2d) -> None:
        kh, kw = conv.kernel_size
        geometry = (conv.out_channels, conv.in_channels, kh, kw, *conv.stride, *conv.padding)
        weight, bias = take("con", geometry).arrays
        scale, shift = take("affine").arrays
        conv.weight.copy_(torch.from_numpy(weight * scale[:, None, None, None]))
        conv.bias.copy_(torch.from_numpy(bias * scale + shift))

    with torch.no_grad():
        model.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
        conv_affine(model.stem)
        take("relu")
        take("max_pool", (3, 3, 2, 2, 0, 0))
        for block in model.blocks:
            conv_affine(block.conv1)
            take("relu")
            conv_affine(block.conv2)
            if block.down:
                take("avg_pool", (2, 2, 2, 2, 0, 0))
            take("add_prev")
            take("relu")
        take("avg_pool", (0, 0, 1, 1, 0, 0))  # a 0x0 window: average over the whole map
        (weight,) = take("fc", (model.fc.out_features, model.fc.in_features)).arrays
        model.fc.weight.copy_(torch.tensor(weight.T))
    if next(it, None) is not None:
        raise ModelError("extra layers after the fully connected layer")


@functools.lru_cache(maxsize=None)
def load_recognizer() -> DlibResNet:
    """dlib's trained network, frozen and in eval mode; one shared instance per process."""
    path = dlib_model_path(WEIGHTS_FILE)
    try:
        mean, layers = read_net(path.read_bytes())
    except ModelError as e:
        raise ModelError(f"{path} is not the dlib face recognition network this port reads: {e}") from e
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from e
    # The cached module must stay usable with autograd even when its first caller is in inference mode.
    with torch.inference_mode(False):
        model = DlibResNet()
        try:
            _load_weights(model, mean, layers)
        except ModelError as e:
            raise ModelError(f"{path} does not hold the network this port expects: {e}") from e
        # channels-last runs the convolutions about 20% faster on CPU, inputs in either layout.
        model = model.to(memory_format=torch.channels_last)
    return model.requires_grad_(False).eval()


def descriptor_from_crops(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W square RGB face crops in 0..255 with dlib's chip geometry -> N x 128, differentiably."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
        raise ValueError(f"expected N x 3 x S x S crops, got {tuple(x.shape)}")
    if x.shape[2] != CHIP_SIZE:
        x = F.interpolate(x, size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear", align_corners=False, antialias=False)
    return load_recognizer()(x)


def describe(crops: np.ndarray) -> np.ndarray:
    """N x S x S x 3 uint8 RGB face crops -> N x 128 float32 descriptors."""
    if crops.ndim != 4 or crops.shape[3] != 3:
        raise ValueError(f"expected N x S x S x 3 crops, got {crops.shape}")
    out = np.empty((len(crops), DESCRIPTOR_DIM), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(crops), DESCRIBE_BATCH):
            batch = np.ascontiguousarray(crops[i : i + DESCRIBE_BATCH])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
            out[i : i + len(batch)] = descriptor_from_crops(x).numpy()
    return out
