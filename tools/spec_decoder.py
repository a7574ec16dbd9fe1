"""An .sfc decoder written from bitstream_spec.md alone, as an outside implementer would: numpy,
safetensors and the standard library, and nothing of the scalableface package. It checks the
specification, not the package: tests/test_spec_decoder.py decodes the golden files with it.

    python tools/spec_decoder.py FILE.sfc [--models DIR]   # symbols, descriptor, pixels' SHA-256 as JSON

It reads the container (spec sections 1, 2 and 6), finds the model set through the models folder's
manifest (section 4), decodes the identity and appearance layers (3.1) and the identity descriptor
(7.1), decodes the enhancement layer to its z and y symbols (3.2 and 7.3, with the network that
codes the file's quality when the model has two), with the range coder
of section 3.3 and the hyper-synthesis and entropy-parameter networks run in float64, and decodes
the top layer to pixels with the generator and the synthesis network (7.2, 7.4, 7.5) in float32.
"""

from __future__ import annotations

import argparse
import binascii
import bisect
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

DEFAULT_MODELS = Path(__file__).resolve().parents[1] / "models"


class SpecError(Exception):
    """The file breaks a rule of the specification."""


# -- container: sections 1 and 2 -----------------------------------------------------------------


def parse(data: bytes) -> dict:
    if len(data) < 3 or data[:3] != b"SFC":
        raise SpecError("bad magic")
    if len(data) < 5:
        raise SpecError("truncated header")
    if data[3] >> 4 != 1:
        raise SpecError("unsupported major version")
    flags = data[4]
    size = 42 if flags & 1 else 14
    if len(data) < size:
        raise SpecError("truncated header")
    if struct.unpack_from(">H", data, size - 2)[0] != binascii.crc_hqx(data[: size - 2], 0):
        raise SpecError("header CRC mismatch")
    crop8, geometry, rates = data[9], data[10], data[11]
    if flags & 0xFE or crop8 == 0 or geometry >> 4 != 0 or geometry & 15 == 0 or rates >> 4 == 0:
        raise SpecError("invalid header field")
    header = {"version": (data[3] >> 4, data[3] & 15), "model_id": data[5:9], "crop_size": 8 * crop8,
              "padding": (geometry & 15) / 16, "base_rate": rates >> 4, "quality": rates & 15, "transform": None}
    if flags & 1:
        w, h, *m = struct.unpack_from(">HH6f", data, 12)
        if w == 0 or h == 0 or not np.all(np.isfinite(m)):
            raise SpecError("invalid transform")
        header["transform"] = (w, h, m)
    layers, pos = [], size
    while pos < len(data):
        kind = data[pos]
        if kind != len(layers) + 1 or kind > 3:
            raise SpecError("unknown, out-of-order or trailing layer")
        length, i = 0, 0
        while True:
            if i == 3 or pos + 1 + i >= len(data):
                raise SpecError("bad or truncated length")
            byte = data[pos + 1 + i]
            length |= (byte & 0x7F) << (7 * i)
            i += 1
            if not byte & 0x80:
                if i > 1 and byte == 0:
                    raise SpecError("non-minimal length")
                break
        if length > 1 << 20:
            raise SpecError("oversized layer")
        body = pos + 1 + i
        end = body + 4 + length
        if end > len(data):
            raise SpecError("truncated layer")
        if struct.unpack_from(">I", data, body)[0] != zlib.crc32(data[pos:body] + data[body + 4 : end]):
            raise SpecError("layer CRC mismatch")
        layers.append(data[body + 4 : end])
        pos = end
    if not layers:
        raise SpecError("no layer")
    return {"header": header, "layers": layers}


# -- models: section 4 ----------------------------------------------------------------------------


def load_model(models_dir: Path, model_id: bytes) -> tuple[dict, dict]:
    """(tensors, config) of the model set a header names, with the tensors and config of the model
    it extends underneath its own."""
    from safetensors.numpy import load_file

    manifest = json.loads((models_dir / "MANIFEST.json").read_text())["models"]
    by_name = {m["name"]: m for m in manifest}
    match = [m for m in manifest if hashlib.sha256(f"{m['name']}:{m['sha256']}".encode()).digest()[:4] == model_id]
    if not match:
        raise SpecError(f"model {model_id.hex()} is not installed")

    def load(entry):
        path = models_dir / entry["file"]
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise SpecError(f"{path} does not match its hash")
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        config = json.loads(header.get("__metadata__", {}).get("config", "{}"))
        # section 4: a float16 tensor is widened to float32 before any use
        tensors = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in load_file(path).items()}
        if entry.get("extends"):
            parent_tensors, parent_config = load(by_name[entry["extends"]])
            return parent_tensors | tensors, parent_config | config
        return tensors, config

    return load(match[0])


def tables(tensors: dict, prefix: str) -> list[tuple[int, list[int]]]:
    """(offset, frequencies) per table under `prefix`."""
    return [(int(o), [int(f) for f in row[: int(n)]])
            for o, row, n in zip(tensors[f"{prefix}table_offsets"], tensors[f"{prefix}table_freqs"], tensors[f"{prefix}table_lengths"])]


# -- section 3.1: exact arithmetic code -------------------------------------------------------------


def arithmetic_decode(payload: bytes, tabs: list[tuple[int, list[int]]]) -> list[int]:
    num, den = int.from_bytes(payload, "big"), 256 ** len(payload)
    out = []
    for offset, f in tabs:
        c = [0]
        for v in f:
            c.append(c[-1] + v)
        t = num * 65536 // den
        j = bisect.bisect_right(c, t, 0, len(f)) - 1
        out.append(offset + j)
        num = num * 65536 - c[j] * den
        den = den * f[j]
    return out


# -- section 3.3: the range coder -------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def coder_cdf(f: list[int]) -> list[int]:
    """The 24-bit cumulative table the range coder uses for a 16-bit table f."""
    n, c, out = len(f), 0, []
    for i in range(n + 1):
        out.append(c * ((1 << 24) - n) // 65536 + i)
        if i < n:
            c += f[i]
    return out


class RangeDecoder:
    def __init__(self, words: list[int]):
        self.words, self.pos = words, 0
        self.point = (self._read() << 32) | self._read()
        self.lower, self.range = 0, MASK64

    def _read(self) -> int:
        w = self.words[self.pos] if self.pos < len(self.words) else 0
        self.pos += 1
        return w

    def decode(self, cdf: list[int]) -> int:
        scale = self.range >> 24
        quantile = ((self.point - self.lower) & MASK64) // scale
        if quantile >= 1 << 24:
            raise SpecError("invalid range-coded data")
        s = bisect.bisect_right(cdf, quantile, 0, len(cdf) - 1) - 1
        self.lower = (self.lower + scale * cdf[s]) & MASK64
        self.range = scale * (cdf[s + 1] - cdf[s])
        if self.range < 1 << 32:
            self.lower = (self.lower << 32) & MASK64
            self.range <<= 32
            self.point = ((self.point << 32) & MASK64) | self._read()
        return s


def range_encode(coded: list[tuple[int, list[int]]]) -> list[int]:
    """The words of section 3.3's encoder for (value, 24-bit cdf) pairs: what tests compare with
    constriction's RangeEncoder."""
    x, rng, shifted = 0, MASK64, 0
    for s, cdf in coded:
        scale = rng >> 24
        x += scale * cdf[s]
        rng = scale * (cdf[s + 1] - cdf[s])
        if rng < 1 << 32:
            x, rng, shifted = x << 32, rng << 32, shifted + 1
    if not coded:
        return []
    top = (x + (1 << 32) - 1) >> 32
    words = [(top >> (32 * k)) & 0xFFFFFFFF for k in range(shifted, -1, -1)]
    if ((x + rng) >> 32) & 0xFFFFFFFF == words[-1]:
        words.append(0)
    return words


# -- section 7: networks in numpy -------------------------------------------------------------------


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: int) -> np.ndarray:
    """C x H x W input, O x C x k x k weight, stride 1, zero padding on every side."""
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    h, wd = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    cols = np.stack([xp[:, i : i + h, j : j + wd] for i in range(k) for j in range(k)], 1)  # C x k*k x h x w
    out = np.tensordot(w.reshape(w.shape[0], -1), cols.reshape(-1, h * wd), 1)
    return out.reshape(w.shape[0], h, wd) + b[:, None, None]


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 5x5 stride-2 transposed convolution of section 7 (padding 2, output padding 1): C x H x W
    to O x 2H x 2W, with a C x O x 5 x 5 weight."""
    c, h, wd = x.shape
    up = np.zeros((c, 2 * h - 1, 2 * wd - 1), x.dtype)
    up[:, ::2, ::2] = x
    up = np.pad(up, ((0, 0), (2, 3), (2, 3)))
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return conv2d(up, np.ascontiguousarray(flipped), b, 0)


def leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, 0.2 * x)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def mlp32(x: np.ndarray, tensors: dict, prefix: str) -> np.ndarray:
    i = 0
    while f"{prefix}{i}.weight" in tensors:
        if i:
            x = x / (np.float32(1) + np.exp(-x))
        x = x @ tensors[f"{prefix}{i}.weight"].T + tensors[f"{prefix}{i}.bias"]
        i += 1
    return x


def identity_descriptor(symbols: list[int], tensors: dict, rate: int) -> np.ndarray:
    p = f"identity.r{rate}."
    y = np.asarray(symbols, np.float32) + tensors[p + "medians"]
    return (mlp32(y, tensors, p + "synthesis.") / tensors[p + "input_scale"][0]).astype(np.float32)


# -- sections 3.2 and 7.3: the enhancement substream ---------------------------------------------------

SCALE_TABLE = np.array([  # section 3.2's listed values
    0.11000000000000001, 0.12440410337871262, 0.14069437215874012, 0.1591177928985361,
    0.17995369415583692, 0.20351798155585427, 0.23016792742637654, 0.26030758761831785,
    0.2943939276393863, 0.33294375098286777, 0.37654153469608204, 0.4258482909882771,
    0.48161158923412467, 0.5446768903224373, 0.6160003651969836, 0.6966633919390023,
    0.787888951190402, 0.891060168498511, 1.0077412847140166, 1.1397013723869016,
    1.2889411577389158, 1.4577233548766322, 1.64860697216033, 1.8644861108681825,
    2.108633844405629, 2.384751843339001, 2.697026498648367, 3.0501923941179885,
    3.4496040902074285, 3.901317307761771, 4.412180742435963, 4.989939901886986,
    5.6433545400719245, 6.382331469143953, 7.218074762587224, 8.163255626910708,
    9.232204517427787, 10.441128410904577, 11.808356529278063, 13.354618240009122,
    15.103357346484879, 17.081087533615843, 19.317794357752575, 21.847389875732397,
    24.708226805960464, 27.943680017030772, 31.602804160185094, 35.74107741637158,
    40.42124263429875, 45.71425861248477, 51.70037594826147, 58.47035376532569,
    66.12683576737696, 74.78590648101743, 84.57885128304754, 95.65414689699084,
    108.17971253796196, 122.3454558368367, 138.36615214401417, 156.48470086762356,
    176.9758082174797, 200.15015219107795, 226.3590929494899, 255.99999999999994,
])


def symbol_check(y: np.ndarray) -> int:
    return zlib.crc32(y.astype("<i2").tobytes()) & 0xFFFF


def network_for(quality: int, tensors: dict, config: dict) -> tuple[dict, dict]:
    """Section 3.2, "Two networks": the tensors and configuration that code `quality`, with the
    low-quality network's (if it codes it) renamed to `enhancement`."""
    low = config.get("enhancement_low")
    if low is None or quality > low["qualities"]:
        return tensors, config
    if low["qualities"] >= config["enhancement"]["qualities"] or low["mode"] != config["enhancement"]["mode"]:
        raise SpecError("the model's low-quality enhancement network does not fit its main one")
    renamed = {"enhancement." + k[len("enhancement_low.") :]: v for k, v in tensors.items() if k.startswith("enhancement_low.")}
    return renamed, config | {"enhancement": low}


def enhancement_symbols(payload: bytes, quality: int, crop: int, tensors: dict, config: dict,
                        scale_table: np.ndarray = SCALE_TABLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z symbols, y symbols, dequantized latent y_hat) of an enhancement payload."""
    e = config["enhancement"]
    stages, context = e.get("stages", 4), e.get("context", "none")
    m, nz = e["m"], e["nz"]
    if crop % 2 ** (stages + 2) or not 1 <= quality <= e["qualities"]:
        raise SpecError("the model cannot decode this crop size or quality")
    if len(payload) < 2 or (len(payload) - 2) % 4:
        raise SpecError("payload length is not 2 + a multiple of 4")
    h = crop // 2 ** stages
    t = {k[len("enhancement.") :]: v.astype(np.float64) for k, v in tensors.items() if k.startswith("enhancement.")}
    z_tabs, y_tabs = tables(tensors, "enhancement.z."), tables(tensors, "enhancement.y.")
    z_cdfs, y_cdfs = [coder_cdf(f) for _, f in z_tabs], [coder_cdf(f) for _, f in y_tabs]
    words = list(struct.unpack(f"<{(len(payload) - 2) // 4}I", payload[2:]))
    dec = RangeDecoder(words)

    z = np.zeros((nz, h // 4, h // 4), np.int64)
    for c in range(nz):
        for i in range(z[c].size):
            z[c].flat[i] = dec.decode(z_cdfs[c]) + z_tabs[c][0]
    x = z + t["z.medians"][:, None, None]
    x = leaky_relu(conv_transpose2d(x, t["net.hyper_synthesis.0.weight"], t["net.hyper_synthesis.0.bias"]))
    x = leaky_relu(conv_transpose2d(x, t["net.hyper_synthesis.2.weight"], t["net.hyper_synthesis.2.bias"]))
    hyper = conv2d(x, t["net.hyper_synthesis.4.weight"], t["net.hyper_synthesis.4.bias"], 1)
    gains = np.exp(t["net.log_gains"][quality - 1])[:, None, None]

    rows, cols = np.indices((h, h))
    passes = [(rows + cols) % 2 == 0, (rows + cols) % 2 == 1] if context == "checkerboard" else [np.ones((h, h), bool)]
    y = np.zeros((m, h, h), np.int64)
    known = np.zeros((m, h, h))
    for p, where in enumerate(passes):
        if context == "checkerboard":
            ctx = conv2d(known, t["net.spatial_context.weight"], t["net.spatial_context.bias"], 2) if p else np.zeros((m, h, h))
            x = leaky_relu(conv2d(np.concatenate([hyper, ctx]), t["net.entropy_parameters.0.weight"], t["net.entropy_parameters.0.bias"], 0))
            out = conv2d(x, t["net.entropy_parameters.2.weight"], t["net.entropy_parameters.2.bias"], 0)
        else:
            out = hyper
        means = out[:m] * gains
        index = np.minimum(np.searchsorted(scale_table, (softplus(out[m:]) + 1e-3) * gains, side="left"), 63)
        for k in range(64):
            sel = (index == k) & where[None]
            for c, r, col in zip(*np.nonzero(sel)):  # (channel, row, column) order
                y[c, r, col] = dec.decode(y_cdfs[k]) + y_tabs[k][0]
        known[:, where] = ((y + means) / gains)[:, where]
    if symbol_check(y) != int.from_bytes(payload[:2], "big"):
        raise SpecError("symbols_crc mismatch")
    return z, y, known


# -- sections 7.2, 7.4 and 7.5: pixels (float32) --------------------------------------------------------


def gdn(x: np.ndarray, beta: np.ndarray, gamma: np.ndarray, inverse: bool) -> np.ndarray:
    norm = np.tensordot(gamma**2, x * x, 1) + (beta**2 + np.float32(1e-6))[:, None, None]
    return x * np.sqrt(norm) if inverse else x / np.sqrt(norm)


def to_pixels(v: np.ndarray) -> np.ndarray:
    """C x H x W float32 in [0, 1] to H x W x C uint8."""
    return np.floor(np.clip(v * np.float32(255) + np.float32(0.5), 0, 255)).astype(np.uint8).transpose(1, 2, 0)


def generate(descriptor: np.ndarray, appearance: np.ndarray, tensors: dict, config: dict) -> np.ndarray:
    t = {k[len("generator.") :]: v for k, v in tensors.items() if k.startswith("generator.")}
    w = config["texture_width"]
    x = np.concatenate([descriptor * np.float32(10), appearance]).astype(np.float32)
    h = leaky_relu(t["fc.weight"] @ x + t["fc.bias"]).reshape(8 * w, 4, 4)
    for i in range(5):
        h = h.repeat(2, 1).repeat(2, 2)
        for j in (1, 3):
            if f"ups.{i}.body.{j}.weight" in t:
                h = leaky_relu(conv2d(h, t[f"ups.{i}.body.{j}.weight"], t[f"ups.{i}.body.{j}.bias"], 1))
    v = conv2d(h, t["to_rgb.weight"], t["to_rgb.bias"], 1)
    return to_pixels((np.float32(1) / (np.float32(1) + np.exp(-v))).astype(np.float32))


def synthesise(y_hat: np.ndarray, base: np.ndarray, tensors: dict, config: dict) -> np.ndarray:
    """The decoded crop from the dequantized latent and the base face (H x W x 3 uint8)."""
    e = config["enhancement"]
    t = {k[len("enhancement.net.") :]: v for k, v in tensors.items() if k.startswith("enhancement.net.")}
    stages, mode = e.get("stages", 4), e["mode"]
    b = base.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    pyramid, p = [], b - np.float32(0.5)
    if mode == "conditional":
        for j in range(stages):
            p = leaky_relu(conv2d(p, t[f"context.stages.{j}.weight"], t[f"context.stages.{j}.bias"], 2)[:, ::2, ::2])
            pyramid.append(p)
    h = y_hat.astype(np.float32)
    for i in range(stages):
        if mode == "conditional":
            h = np.concatenate([h, pyramid[stages - 1 - i]])
        h = conv_transpose2d(h, t[f"synthesis.{i}.weight"], t[f"synthesis.{i}.bias"])
        if i < stages - 1:
            h = gdn(h, t[f"synthesis_gdn.{i}.beta"], t[f"synthesis_gdn.{i}.gamma"], inverse=True)
    return to_pixels(h + (np.float32(0.5) if mode == "single" else b))


def decode(data: bytes, models_dir: Path = DEFAULT_MODELS) -> dict:
    """Every symbol of a file, its identity descriptor (as tests/golden/*/expected.json lists them)
    and the crop of its top layer (`image`, H x W x 3 uint8)."""
    f = parse(data)
    h, layers = f["header"], f["layers"]
    tensors, config = load_model(models_dir, h["model_id"])
    rate = h["base_rate"]
    if rate not in config["identity_rates"]:
        raise SpecError("the model lacks the file's base rate point")
    out = {"identity": arithmetic_decode(layers[0], tables(tensors, f"identity.r{rate}."))}
    descriptor = identity_descriptor(out["identity"], tensors, rate)
    appearance = tensors["appearance.medians"]  # the typical appearance of section 3.1
    if len(layers) > 1:
        out["appearance"] = arithmetic_decode(layers[1], tables(tensors, "appearance."))
        appearance = np.asarray(out["appearance"], np.float32) + appearance
    if h["crop_size"] != 128:
        raise SpecError("the model decodes 128x128 crops")
    image = generate(descriptor, appearance, tensors, config)
    if len(layers) > 2:
        net_tensors, net_config = network_for(h["quality"], tensors, config)
        z, y, y_hat = enhancement_symbols(layers[2], h["quality"], h["crop_size"], net_tensors, net_config)
        out["enhancement_z"] = {"shape": list(z.shape), "values": z.ravel().tolist()}
        out["enhancement_y"] = {"shape": list(y.shape), "values": y.ravel().tolist()}
        image = synthesise(y_hat, image, net_tensors, net_config)
    return {"symbols": out, "descriptor": descriptor.tolist(), "image": image}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="a models folder with MANIFEST.json")
    args = ap.parse_args(argv)
    try:
        out = decode(args.file.read_bytes(), args.models)
        image = out.pop("image")
        out["pixels_sha256"] = hashlib.sha256(image.tobytes()).hexdigest()
        print(json.dumps(out))
    except (SpecError, OSError, KeyError) as e:
        print(f"spec_decoder: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
