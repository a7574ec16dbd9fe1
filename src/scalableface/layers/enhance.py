"""Enhancement layer: transform coding of the texture the base-layer face misses.

Three variants share one network shape, so they compare at equal size and training time:
- "conditional": the analysis transform sees the crop and the base face; the synthesis transform
  sees the decoded latent and a feature pyramid of the base face, and adds its output to the base face;
- "residual": the paper's scheme, the residual (crop - base face) coded on its own and added back;
- "single": no base layer at all, a plain single-layer codec (the scalability baseline).

One model serves every quality: quality q multiplies the latent by a learned gain vector before
rounding (a per-channel quantization step) and divides it out after. The entropy model is a mean-scale
hyperprior whose scales depend on the hyper-latent z only, never on the base face: the decoder computes
them in float64 from integer symbols, so the encoder and decoder pick the same table (bitstream_spec.md,
section 5). Run-time coding (EnhancementCodec) uses integer tables stored in the model file.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BitstreamError, ModelError
from . import refine
from .exact import map_faces, per_face, to_pixels

MODES = ("conditional", "residual", "single")
SCALE_LEVELS = 64
# The standard deviations of the 64 Gaussian tables, exp(ln 0.11 + k (ln 256 - ln 0.11) / 63), as the
# float64 values bitstream_spec.md 3.2 lists: the table choice must not depend on the machine's exp,
# and numpy's differs in the last bit between CPUs (k = 1 on one machine here, k = 63 against libm).
SCALE_TABLE = np.array([
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
SCALE_TABLE.flags.writeable = False


def scale_indexes(scales: np.ndarray) -> np.ndarray:
    """Index of the smallest table scale >= each scale (clamped to the table)."""
    return np.clip(np.searchsorted(SCALE_TABLE, scales, side="left"), 0, SCALE_LEVELS - 1)


class GDN(nn.Module):
    """Generalized divisive normalization (Balle et al.); inverse=True multiplies instead."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 ** 0.5 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        norm = F.conv2d(x * x, (self.gamma ** 2).view(c, c, 1, 1), self.beta ** 2 + 1e-6)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def _down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class BaseContext(nn.Module):
    """Features of the base face at 1/2, 1/4, ... of its size, one per synthesis stage."""

    def __init__(self, width: int, stages: int = 4):
        super().__init__()
        self.stages = nn.ModuleList([_down(3 if i == 0 else width, width) for i in range(stages)])

    def forward(self, base: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], base - 0.5
        for stage in self.stages:
            h = F.leaky_relu(stage(h), 0.2)
            out.append(h)
        return out


CONTEXTS = ("none", "checkerboard")


def anchor_mask(h: int, w: int) -> torch.Tensor:
    """1 x 1 x h x w: 1 where (row + column) is even, the checkerboard's first pass (He et al. 2021)."""
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((r + c) % 2 == 0).to(torch.float32)[None, None]


class EnhanceNet(nn.Module):
    """Transforms and entropy model. Images are N x 3 x H x W in [0, 1], H and W multiples of
    `granule` (the latent is at 1/2**stages, the hyper-latent two stride-2 stages below it).

    context="checkerboard" codes the latent in two passes: the anchors (row + column even) from
    the hyper-latent alone, the rest from the hyper-latent and a 5x5 convolution of the decoded
    anchors; "none" is the plain mean-scale hyperprior."""

    def __init__(self, mode: str = "conditional", n: int = 64, m: int = 96, nz: int = 32, ctx: int = 32,
                 qualities: int = 6, stages: int = 4, context: str = "none"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}")
        self.mode, self.m, self.nz, self.ctx, self.stages, self.context_model = mode, m, nz, ctx, stages, context
        cond = ctx if mode == "conditional" else 0
        self.context = BaseContext(ctx, stages) if cond else None
        layers = [_down(6 if cond else 3, n)]
        for i in range(1, stages):
            layers += [GDN(n), _down(n, m if i == stages - 1 else n)]
        self.analysis = nn.Sequential(*layers)
        self.synthesis = nn.ModuleList(
            [_up((m if i == 0 else n) + cond, 3 if i == stages - 1 else n) for i in range(stages)]
        )
        self.synthesis_gdn = nn.ModuleList([GDN(n, inverse=True) for _ in range(stages - 1)])
        self.hyper_analysis = nn.Sequential(
            nn.Conv2d(m, n, 3, padding=1), nn.LeakyReLU(0.2), _down(n, n), nn.LeakyReLU(0.2), _down(n, nz)
        )
        self.hyper_synthesis = nn.Sequential(
            _up(nz, n), nn.LeakyReLU(0.2), _up(n, n), nn.LeakyReLU(0.2), nn.Conv2d(n, 2 * m, 3, padding=1)
        )
        if context == "checkerboard":
            self.spatial_context = nn.Conv2d(m, m, 5, padding=2)
            self.entropy_parameters = nn.Sequential(
                nn.Conv2d(3 * m, 2 * m, 1), nn.LeakyReLU(0.2), nn.Conv2d(2 * m, 2 * m, 1)
            )
        # log of the per-channel gain at each quality; spread like sqrt(lambda) to start
        init = torch.linspace(-1.5, 2.0, qualities)[:, None].expand(qualities, m)
        self.log_gains = nn.Parameter(init.clone())

    @property
    def granule(self) -> int:
        """Image sides must be multiples of this."""
        return 2 ** (self.stages + 2)

    @property
    def qualities(self) -> int:
        return self.log_gains.shape[0]

    def contexts(self, base: torch.Tensor | None) -> list | None:
        return self.context(base) if self.context is not None else None

    def analyse(self, x: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        if self.mode == "conditional":
            inp = torch.cat([x - 0.5, base - 0.5], 1)
        elif self.mode == "residual":
            inp = x - base
        else:
            inp = x - 0.5
        return self.analysis(inp)

    def synthesise(self, y_hat: torch.Tensor, base: torch.Tensor | None, contexts: list | None) -> torch.Tensor:
        h = y_hat
        last = self.stages - 1
        for i, up in enumerate(self.synthesis):
            if contexts is not None:
                h = torch.cat([h, contexts[last - i]], 1)
            h = up(h)
            if i < last:
                h = self.synthesis_gdn[i](h)
        return h + base if base is not None and self.mode != "single" else h + 0.5

    def hyper(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The hyper-synthesis output: 2M channels, the means and raw scales of a plain hyperprior."""
        return self.hyper_synthesis(z_hat)

    def parameters_from(self, hyper: torch.Tensor, anchors: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) of the ungained latent from the hyper output and, for the checkerboard's
        second pass, the decoded anchors (ungained, zero elsewhere; None in the first pass)."""
        if self.context_model == "checkerboard":
            ctx = self.spatial_context(anchors) if anchors is not None else hyper.new_zeros(
                hyper.shape[0], self.m, *hyper.shape[2:])
            out = self.entropy_parameters(torch.cat([hyper, ctx], 1))
        else:
            out = hyper
        means, raw = out.chunk(2, 1)
        return means, F.softplus(raw) + 1e-3

    def gains(self, quality_index: torch.Tensor) -> torch.Tensor:
        """N x M x 1 x 1 gains for 0-based quality indexes."""
        return torch.exp(self.log_gains[quality_index])[:, :, None, None]

    def entropy_passes(self, y: torch.Tensor, hyper: torch.Tensor, g: torch.Tensor, quantize) -> tuple:
        """(y_hat, gained means, gained scales) of the latent y in the coding passes of section 3.2,
        differentiable: `quantize(yg, mg)` stands for the rounding, turning the gained latent and its
        gained means into the gained values the decoder would see (straight-through rounding in
        training, annealed soft rounding at encode time); the checkerboard's second pass sees the
        anchors that way."""
        means, scales = self.parameters_from(hyper, None)
        y_hat = quantize(y * g, means * g) / g
        if self.context_model == "checkerboard":
            anchors = anchor_mask(*y.shape[2:])
            means2, scales2 = self.parameters_from(hyper, y_hat * anchors)
            means = anchors * means + (1 - anchors) * means2
            scales = anchors * scales + (1 - anchors) * scales2
            y_hat = anchors * y_hat + (1 - anchors) * quantize(y * g, means2 * g) / g
        return y_hat, means * g, (scales * g).clamp_min(SCALE_TABLE[0])


def gaussian_likelihood(v: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The probability of the unit-width bin around v of a Gaussian (differentiable; floor 1e-9)."""
    d = (v - mean).abs()
    normal = torch.distributions.Normal(0.0, 1.0)
    lik = normal.cdf((0.5 - d) / scale) - normal.cdf((-0.5 - d) / scale)
    return lik.clamp_min(1e-9)


# -- run time: integer tables and constriction's range coder ------------------------------------


def symbol_check(symbols: np.ndarray) -> int:
    """The 16-bit symbol check: the low 16 bits of the CRC-32 of the latent symbols as little-endian
    int16 in (channel, row, column) order; it turns an encoder/decoder mismatch into an error."""
    return zlib.crc32(symbols.astype("<i2").tobytes()) & 0xFFFF


@dataclass
class CodedTables:
    offsets: np.ndarray  # first symbol of each table
    freqs: list  # per table: int frequencies summing to 2**16

    @classmethod
    def from_tensors(cls, tensors: dict, prefix: str) -> "CodedTables":
        try:
            offsets, freqs, lengths = (tensors[f"{prefix}.table_{k}"] for k in ("offsets", "freqs", "lengths"))
        except KeyError as e:
            raise ModelError(f"model file lacks {e.args[0]}") from None
        rows = [np.asarray(row[: int(n)], np.int64) for row, n in zip(freqs, lengths)]
        if any(r.sum() != 1 << 16 or (r < 1).any() for r in rows):
            raise ModelError(f"malformed frequency tables {prefix} in the model file")
        return cls(np.asarray(offsets, np.int64), rows)

    @cached_property
    def models(self) -> list:
        import constriction

        return [constriction.stream.model.Categorical(r.astype(np.float64) / (1 << 16), perfect=False) for r in self.freqs]

    def clamp(self, symbols: np.ndarray, table: np.ndarray) -> np.ndarray:
        lo = self.offsets[table]
        hi = lo + np.array([len(f) for f in self.freqs])[table] - 1
        return np.clip(symbols, lo, hi)


class EnhancementCodec:
    """Enhancement substreams of batches of faces (bitstream_spec.md, section 3.2)."""

    def __init__(self, net: EnhanceNet, z_medians: np.ndarray, z_tables: CodedTables, y_tables: CodedTables,
                 default_quality: int = 3, lambdas: list | None = None):
        self.net = net.eval().requires_grad_(False)  # run time: only an effort search takes gradients, of the latent
        self.default_quality = default_quality
        self.lambdas = lambdas  # per quality, the rate-distortion trade-off it stands for (encode effort)
        self.z_medians = z_medians.astype(np.float64)
        self.z_tables = z_tables
        self.y_tables = y_tables
        # float64 copy of the entropy model: the table choice must not depend on batch size or threads
        self.net64 = copy.deepcopy(net).double().eval()

    @property
    def mode(self) -> str:
        return self.net.mode

    @property
    def qualities(self) -> int:
        return self.net.qualities

    def _passes(self, h: int, w: int) -> list[np.ndarray]:
        """The latent positions each coding pass covers (h x w booleans), in coding order."""
        if self.net.context_model == "checkerboard":
            anchors = anchor_mask(h, w)[0, 0].numpy().astype(bool)
            return [anchors, ~anchors]
        return [np.ones((h, w), bool)]

    def parameters_at(self, hyper: torch.Tensor, known: np.ndarray | None, gains: np.ndarray,
                    where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gained means, table indexes), M x P, of one face's latent at the P positions `where`
        (h x w booleans), in float64, from the hyper-synthesis output, the per-channel gains (M x 1)
        and the dequantized latent decoded so far (zero where not yet decoded; None in the first pass)."""
        with torch.inference_mode():
            if self.net.context_model == "checkerboard":
                means, scales = self._checkerboard_parameters(hyper[0], known, torch.from_numpy(where))
            else:
                means, scales = (v[0][:, torch.from_numpy(where)] for v in self.net64.parameters_from(hyper, None))
        return means.numpy() * gains, scale_indexes(scales.numpy() * gains)

    @cached_property
    def _context_taps(self) -> tuple[list, torch.Tensor]:
        """The spatial context's taps (dr, dc) that reach an anchor from a second-pass position
        (dr + dc odd: the other 13 of the 25 always see zeros), and their weights side by side,
        M x (taps * M), so the context is one matrix product over the positions that need it."""
        w = self.net64.spatial_context.weight
        taps = [(dr, dc) for dr in range(-2, 3) for dc in range(-2, 3) if (dr + dc) % 2]
        return taps, torch.cat([w[:, :, dr + 2, dc + 2] for dr, dc in taps], 1)

    def _checkerboard_parameters(self, hyper: torch.Tensor, known: np.ndarray | None,
                                 where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EnhanceNet.parameters_from at the positions of one pass only: the 1x1 entropy-parameter
        layers per position and, in the second pass, the 5x5 context over its anchor taps alone.
        Equal to the dense computation up to float64 rounding; encoder and decoder both run this."""
        net, m = self.net64, self.net.m
        rows, cols = torch.nonzero(where, as_tuple=True)
        if known is None:  # first pass: the context is zero (bitstream_spec.md, 7.3)
            ctx = hyper.new_zeros(m, len(rows))
        else:
            taps, weights = self._context_taps
            padded = F.pad(torch.from_numpy(known), (2, 2, 2, 2))
            gathered = torch.cat([padded[:, rows + 2 + dr, cols + 2 + dc] for dr, dc in taps])
            ctx = weights @ gathered + net.spatial_context.bias[:, None]
        first, second = net.entropy_parameters[0], net.entropy_parameters[2]
        x = torch.cat([hyper[:, rows, cols], ctx])
        x = F.leaky_relu(first.weight[:, :, 0, 0] @ x + first.bias[:, None], 0.2)
        out = second.weight[:, :, 0, 0] @ x + second.bias[:, None]
        means, raw = out.chunk(2, 0)
        return means, F.softplus(raw) + 1e-3

    def _start(self, z_sym: np.ndarray, q: int) -> tuple[torch.Tensor, np.ndarray]:
        """(hyper-synthesis output, gains M x 1) for one face's z symbols at 0-based quality q: the gains
        broadcast over a pass's positions, as every latent is handled M x positions."""
        with torch.inference_mode():
            hyper = self.net64.hyper(torch.from_numpy((z_sym + self.z_medians[:, None, None])[None]))
            gains = torch.exp(self.net64.log_gains[q])[:, None].numpy()
        return hyper, gains

    def z_symbols(self, z: np.ndarray) -> np.ndarray:
        """The hyper-latent's symbols (... x nz x h x w): round(z - median), clamped to each channel's table."""
        channels = np.arange(self.net.nz)[:, None, None]
        return self.z_tables.clamp(np.rint(z - self.z_medians[:, None, None]).astype(np.int64), channels)

    def compress(self, crops: np.ndarray, bases: np.ndarray | None, quality: int, effort: int = 0) -> list[bytes]:
        """One payload per face: N x H x W x 3 uint8 crops, their base faces (None for the
        single-layer mode), quality 1..qualities; effort > 0 searches for cheaper latents (refine.py)."""
        if not 1 <= quality <= self.qualities:
            raise ValueError(f"quality must be 1..{self.qualities}")
        steps, checks = refine.search(effort)
        x = _tensor(crops)
        b = _tensor(bases) if bases is not None else None
        with torch.inference_mode():
            y = self.net.analyse(x, b)
            z = self.net.hyper_analysis(y)
        y, z = y.double().numpy(), z.double().numpy()
        coded = [self.encode_latent(y[i], z[i], quality) for i in range(len(y))]
        if not steps:
            return [payload for payload, _ in coded]
        return self._refined(x, b, y, z, quality, steps, checks, coded)

    def _cost(self, x: torch.Tensor, b: torch.Tensor | None, quality: int, coded: list) -> tuple[np.ndarray, list]:
        """(the real rate-distortion cost of each face's (payload, dequantized latent), the payloads)."""
        y_hat = torch.from_numpy(np.stack([known for _, known in coded]).astype(np.float32))
        with torch.inference_mode():
            out = per_face(lambda y1, b1: self.net.synthesise(y1, b1, self.net.contexts(b1)), y_hat, b)
        pixels = (torch.from_numpy(to_pixels(out)).permute(0, 3, 1, 2) / 255 - x) ** 2
        bpp = np.array([8 * len(p) for p, _ in coded]) / (x.shape[2] * x.shape[3])
        return self.lambda_of(quality) * 255 ** 2 * pixels.flatten(1).mean(1).double().numpy() + bpp, [p for p, _ in coded]

    def lambda_of(self, quality: int) -> float:
        """The trade-off quality stands for: its trained lambda, or for an untrained (extrapolated)
        quality the geometric progression of its two nearest trained ones continued."""
        lams = self.lambdas or []
        if len(lams) != self.qualities or sum(v is not None for v in lams) < 2:
            raise ModelError("this model's configuration does not give its qualities' lambdas, which encode effort needs")
        q = quality - 1
        if lams[q] is not None:
            return float(lams[q])
        known = [(i, float(v)) for i, v in enumerate(lams) if v is not None]
        below, above = [k for k in known if k[0] < q], [k for k in known if k[0] > q]
        (i0, l0), (i1, l1) = (below[-1], above[0]) if below and above else (above[:2] if above else below[-2:])
        return l0 * (l1 / l0) ** ((q - i0) / (i1 - i0))

    def _refined(self, x, b, y, z, quality, steps, checks, coded) -> list[bytes]:
        net = self.net
        lam = self.lambda_of(quality)
        g = torch.exp(net.log_gains[quality - 1].detach())[None, :, None, None]
        z_hat = self.z_symbols(z) + self.z_medians[:, None, None]
        with torch.no_grad():
            hyper = net.hyper(torch.from_numpy(z_hat.astype(np.float32)))
            contexts = net.contexts(b)
        pixels = x.shape[2] * x.shape[3]

        def soft_cost(u, rounding):
            y_hat, mg, sg = net.entropy_passes(u / g, hyper, g, lambda ug, mg: mg + rounding(ug - mg))
            bits = -torch.log2(gaussian_likelihood(y_hat * g, mg, sg)).flatten(1).sum(1)
            out = net.synthesise(y_hat, b, contexts)
            return lam * 255 ** 2 * ((out - x) ** 2).flatten(1).mean(1) + bits / pixels

        def true_cost(u):
            yu = (u / g).double().numpy()
            return self._cost(x, b, quality, [self.encode_latent(yu[i], z[i], quality) for i in range(len(yu))])

        return refine.refine(torch.from_numpy(y).float() * g, soft_cost, true_cost, steps, checks,
                             self._cost(x, b, quality, coded))

    def decompress(self, payloads: list[bytes], qualities: list[int], bases: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 faces from payloads coded at `qualities` against `bases` (N x H x W x 3;
        for the single-layer mode, only their shape counts)."""
        n, h, w = bases.shape[:3]
        g, f = self.net.granule, 2 ** self.net.stages
        if h % g or w % g:
            raise BitstreamError(f"the enhancement layer needs a crop size that is a multiple of {g}, not {h}x{w}")
        for q in qualities:
            if not 1 <= q <= self.qualities:
                raise BitstreamError(f"the header names enhancement quality {q}; this model has 1..{self.qualities}")
        shape = (self.net.m, h // f, w // f)
        y_hat = np.stack([d.values for d in map_faces(lambda i: self._decompress_one(payloads[i], qualities[i] - 1, shape), n)])
        b = _tensor(bases) if self.mode != "single" else None
        out = per_face(lambda y1, b1: self.net.synthesise(y1, b1, self.net.contexts(b1)),
                       torch.from_numpy(y_hat.astype(np.float32)), b)
        return to_pixels(out)

    def encode_latent(self, y: np.ndarray, z: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        """(payload, dequantized latent the decoder will rebuild) for one face's latent y (M x h x w)
        and hyper-latent z at `quality` (1..qualities)."""
        import constriction

        z_sym = self.z_symbols(z)
        hyper, gains = self._start(z_sym, quality - 1)
        enc = constriction.stream.queue.RangeEncoder()
        for c in range(z.shape[0]):
            enc.encode((z_sym[c].ravel() - self.z_tables.offsets[c]).astype(np.int32), self.z_tables.models[c])
        y_sym = np.zeros(y.shape, np.int64)
        known = np.zeros(y.shape, np.float64)
        for i, where in enumerate(self._passes(*y.shape[1:])):
            means, flat_idx = self.parameters_at(hyper, known if i else None, gains, where)
            flat_sym = self.y_tables.clamp(np.rint(y[:, where] * gains - means).astype(np.int64), flat_idx)
            for k in np.unique(flat_idx):
                enc.encode((flat_sym[flat_idx == k] - self.y_tables.offsets[k]).astype(np.int32), self.y_tables.models[k])
            y_sym[:, where] = flat_sym
            known[:, where] = (flat_sym + means) / gains
        check = symbol_check(y_sym)
        return check.to_bytes(2, "big") + enc.get_compressed().astype("<u4").tobytes(), known

    def decode_latent(self, payload: bytes, quality: int, crop_size: int) -> "DecodedLatent":
        """The symbols and the dequantized latent of one payload coded at `quality` (1..qualities)
        for a crop_size x crop_size crop: what the golden files record."""
        f = 2 ** self.net.stages
        if crop_size % self.net.granule or not 1 <= quality <= self.qualities:
            raise BitstreamError(f"no enhancement latent for quality {quality} of a {crop_size}x{crop_size} crop")
        return self._decompress_one(payload, quality - 1, (self.net.m, crop_size // f, crop_size // f))

    def _decompress_one(self, payload: bytes, q: int, latent_shape: tuple[int, int, int]) -> "DecodedLatent":
        """The symbols and dequantized latent (M x h x w); a payload that does not decode to what
        was encoded raises BitstreamError."""
        import constriction

        if len(payload) < 2 or (len(payload) - 2) % 4:
            raise BitstreamError("enhancement layer: payload length is not 2 + a multiple of 4")
        m, h, w = latent_shape
        zh, zw = h // 4, w // 4
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload[2:], "<u4").astype(np.uint32))
        y_sym = np.zeros(latent_shape, np.int64)
        known = np.zeros(latent_shape, np.float64)
        try:
            z_sym = np.stack([dec.decode(self.z_tables.models[c], zh * zw) for c in range(self.net.nz)]).astype(np.int64)
            z_sym = z_sym.reshape(self.net.nz, zh, zw) + self.z_tables.offsets[:, None, None]
            hyper, gains = self._start(z_sym, q)
            for i, where in enumerate(self._passes(h, w)):
                means, flat_idx = self.parameters_at(hyper, known if i else None, gains, where)
                flat_sym = np.zeros(flat_idx.shape, np.int64)
                for k in np.unique(flat_idx):
                    sel = flat_idx == k
                    flat_sym[sel] = dec.decode(self.y_tables.models[k], int(sel.sum())) + self.y_tables.offsets[k]
                y_sym[:, where] = flat_sym
                known[:, where] = (flat_sym + means) / gains
        except (ValueError, RuntimeError, AssertionError) as e:  # constriction's ways of saying the data ran out or is invalid
            raise BitstreamError(f"enhancement layer does not decode: {e}") from None
        if symbol_check(y_sym) != int.from_bytes(payload[:2], "big"):
            raise BitstreamError("enhancement layer decodes to different symbols than were coded "
                                 "(corrupted data, or this machine computes the entropy model differently)")
        return DecodedLatent(z_sym, y_sym, known)


@dataclass(frozen=True)
class DecodedLatent:
    z_symbols: np.ndarray  # Nz x h/4 x w/4 int64
    y_symbols: np.ndarray  # M x h x w int64
    values: np.ndarray  # M x h x w float64: the dequantized latent the synthesis transform sees


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255  # a copy: mmaps are read-only


LOW_TIER = "enhancement_low"


class TieredEnhancement:
    """A model's enhancement layer when it carries a second network for its low qualities
    (bitstream_spec.md, 3.2): qualities 1..low.qualities are coded by `low`, the rest by `main` at the
    same quality number. A network with a coarser latent grid codes low rates in fewer bits; one
    with a finer grid reaches higher PSNR at the top."""

    def __init__(self, low: EnhancementCodec, main: EnhancementCodec):
        if low.mode != main.mode or low.qualities >= main.qualities:
            raise ModelError("the low-quality enhancement network must share the main one's mode "
                             "and have fewer qualities")
        self.low, self.main = low, main

    @property
    def mode(self) -> str:
        return self.main.mode

    @property
    def qualities(self) -> int:
        return self.main.qualities

    @property
    def default_quality(self) -> int:
        return self.main.default_quality

    def network(self, quality: int) -> EnhancementCodec:
        """The network that codes `quality` (1..qualities)."""
        return self.low if quality <= self.low.qualities else self.main

    def compress(self, crops: np.ndarray, bases: np.ndarray | None, quality: int, effort: int = 0) -> list[bytes]:
        if not 1 <= quality <= self.qualities:
            raise ValueError(f"quality must be 1..{self.qualities}")
        return self.network(quality).compress(crops, bases, quality, effort)

    def decompress(self, payloads: list[bytes], qualities: list[int], bases: np.ndarray) -> np.ndarray:
        out = np.empty_like(bases)
        tiers = np.array([q > self.low.qualities for q in qualities], bool)
        for codec, sel in ((self.low, ~tiers), (self.main, tiers)):
            ks = np.flatnonzero(sel)
            if len(ks):
                out[ks] = codec.decompress([payloads[k] for k in ks], [qualities[k] for k in ks], bases[ks])
        return out

    def decode_latent(self, payload: bytes, quality: int, crop_size: int) -> DecodedLatent:
        if not 1 <= quality <= self.qualities:
            raise BitstreamError(f"no enhancement latent for quality {quality}")
        return self.network(quality).decode_latent(payload, quality, crop_size)


def load_enhancement(tensors: dict, config: dict) -> EnhancementCodec | TieredEnhancement:
    """A model's enhancement layer: the network under `enhancement.*`, and with it, when the model
    has one, the low-quality network under `enhancement_low.*` (TieredEnhancement)."""
    main = load_network(tensors, config, "enhancement")
    return TieredEnhancement(load_network(tensors, config, LOW_TIER), main) if LOW_TIER in config else main


def load_network(tensors: dict, config: dict, prefix: str) -> EnhancementCodec:
    """The codec stored under `<prefix>.*` in a model file, with its shape in config[prefix]."""
    shape = config.get(prefix)
    if not isinstance(shape, dict):
        raise ModelError(f"the model has no {prefix} layer")
    net = EnhanceNet(shape["mode"], shape["n"], shape["m"], shape["nz"], shape["ctx"], shape["qualities"],
                     shape.get("stages", 4), shape.get("context", "none"))
    state = {k[len(prefix) + 5 :]: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items() if k.startswith(f"{prefix}.net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"model weights under {prefix} do not fit the network: {e}") from None
    z_medians = tensors.get(f"{prefix}.z.medians")
    z_tables, y_tables = CodedTables.from_tensors(tensors, f"{prefix}.z"), CodedTables.from_tensors(tensors, f"{prefix}.y")
    if z_medians is None or len(z_medians) != net.nz or len(z_tables.freqs) != net.nz or len(y_tables.freqs) != SCALE_LEVELS:
        raise ModelError(f"the entropy tables under {prefix} do not fit the network")
    return EnhancementCodec(net, z_medians, z_tables, y_tables, int(shape.get("default_quality", 3)), shape.get("lambdas"))
