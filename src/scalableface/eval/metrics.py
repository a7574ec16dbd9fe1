"""Image fidelity, defined once for training logs, checkpoint validation and the benchmarks."""

from __future__ import annotations

import numpy as np

MIN_MSE = 1e-10  # identical images: a finite PSNR (100 dB at peak 1) instead of infinity


def psnr(mse, peak: float = 1.0):
    """PSNR in dB of each image from its mean squared error (a torch tensor), in units where the
    brightest value is `peak` (1 for training's [0, 1] tensors, 255 for uint8 images)."""
    import torch

    return 10 * torch.log10(peak ** 2 / mse.clamp_min(MIN_MSE))


def psnr_msssim(ref: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR-RGB and MS-SSIM of N x H x W x 3 uint8 images. MS-SSIM uses a 7-pixel window:
    128-pixel crops are too small for the default 11-pixel window over 5 scales."""
    import torch
    from pytorch_msssim import ms_ssim

    x = torch.from_numpy(np.array(ref)).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(np.array(out)).permute(0, 3, 1, 2).float()
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return psnr(mse, 255).numpy(), ms_ssim(x, y, data_range=255, win_size=7, size_average=False).numpy()
