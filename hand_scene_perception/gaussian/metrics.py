"""Image metrics of rendered hands against camera images, on the hand's pixels only.

A hand covers a few percent of a frame: measured over the whole image, PSNR and SSIM would mostly score the
background (which the avatar does not render). PSNR is taken over the hand-mask pixels; SSIM (a windowed statistic)
over the mask's bounding box, grown to SSIM's window where the hand is smaller, with pytorch-msssim's implementation
(11-pixel Gaussian window, sigma 1.5, K = 0.01, 0.03: the usual constants), differentiable, so the same function
serves the D-SSIM loss.
"""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ssim

SSIM_WINDOW = 11


def _checked(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mask as bool (H, W) after checking (H, W, 3) images of one size, values in [0, 1]."""
    if rendered.shape != target.shape or rendered.dim() != 3 or rendered.shape[-1] != 3:
        raise ValueError(f"images must both be (H, W, 3), got {tuple(rendered.shape)} and {tuple(target.shape)}")
    if mask.shape != rendered.shape[:2]:
        raise ValueError(f"mask must be {tuple(rendered.shape[:2])}, got {tuple(mask.shape)}")
    mask = mask.to(torch.bool)
    if not mask.any():
        raise ValueError("the hand mask is empty: no pixels to compare")
    return mask


def masked_psnr(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR in dB over the mask's pixels (all three channels) of (H, W, 3) images in [0, 1]; inf when equal."""
    mask = _checked(rendered, target, mask)
    error = torch.mean((rendered[mask].double() - target[mask].double()) ** 2).item()
    return math.inf if error == 0 else -10.0 * math.log10(error)


def masked_ssim(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SSIM (a 0-d tensor, differentiable in both images) over the mask's bounding box of (H, W, 3) images in
    [0, 1]; the box is grown to SSIM_WINDOW pixels a side where smaller (ValueError if the image is)."""
    mask = _checked(rendered, target, mask)
    height, width = mask.shape
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} for SSIM, got {width}x{height}")
    rows, cols = torch.nonzero(mask.any(dim=1)).ravel(), torch.nonzero(mask.any(dim=0)).ravel()
    top, bottom = _span(int(rows[0]), int(rows[-1]) + 1, height)
    left, right = _span(int(cols[0]), int(cols[-1]) + 1, width)
    def crop(image: torch.Tensor) -> torch.Tensor:  # (1, 3, h, w), as pytorch-msssim takes it
        return image[top:bottom, left:right].permute(2, 0, 1)[None].to(torch.float64)

    return ssim(crop(rendered), crop(target), data_range=1.0, win_size=SSIM_WINDOW)


def _span(start: int, stop: int, size: int) -> tuple[int, int]:
    """[start, stop) grown evenly to at least SSIM_WINDOW, kept inside [0, size)."""
    missing = max(SSIM_WINDOW - (stop - start), 0)
    start = max(start - missing // 2, 0)
    stop = min(max(stop + (missing - missing // 2), start + SSIM_WINDOW), size)
    return max(min(start, stop - SSIM_WINDOW), 0), stop
