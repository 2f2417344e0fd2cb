"""Hand-pixel image metrics: PSNR over the mask, SSIM over its bounding box."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_msssim import ssim

from hand_scene_perception.gaussian.metrics import SSIM_WINDOW, masked_psnr, masked_ssim


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(64, 80, 3, generator=generator, dtype=torch.float64)
    mask = torch.zeros(64, 80, dtype=torch.bool)
    mask[20:45, 30:60] = True
    return target, target.clone(), mask


def test_psnr_counts_the_hand_pixels_only():
    target, rendered, mask = _images()
    assert masked_psnr(rendered, target, mask) == math.inf
    rendered = (target + torch.where(mask[..., None], 0.1, 0.5)).clamp_max(2.0)  # 0.1 off on the hand, 0.5 elsewhere
    assert masked_psnr(rendered, target, mask) == pytest.approx(20.0, abs=1e-6)


def test_ssim_is_the_libraries_on_the_masks_box_and_ignores_the_rest():
    target, rendered, mask = _images()
    assert masked_ssim(rendered, target, mask).item() == pytest.approx(1.0)
    noise = 0.2 * torch.randn(rendered.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rendered = (rendered + noise).clamp(0, 1)
    expected = ssim(rendered[20:45, 30:60].permute(2, 0, 1)[None], target[20:45, 30:60].permute(2, 0, 1)[None],
                    data_range=1.0, win_size=SSIM_WINDOW)  # fmt: skip
    value = masked_ssim(rendered, target, mask)
    assert value.item() == pytest.approx(expected.item()) and value.item() < 0.9
    outside = rendered.clone()
    outside[:10] = 0.0  # rows outside the box
    assert masked_ssim(outside, target, mask).item() == pytest.approx(value.item())


def test_ssim_grows_a_small_hand_to_its_window_and_is_differentiable():
    target, rendered, _ = _images()
    mask = torch.zeros(64, 80, dtype=torch.bool)
    mask[62:64, 0:3] = True  # a 3x2 corner
    rendered = (rendered + 0.1).clamp_max(1.0).requires_grad_(True)
    value = masked_ssim(rendered, target, mask)
    expected = ssim(rendered[53:64, 0:11].permute(2, 0, 1)[None], target[53:64, 0:11].permute(2, 0, 1)[None],
                    data_range=1.0, win_size=SSIM_WINDOW)  # fmt: skip
    assert value.item() == pytest.approx(expected.item())
    (1.0 - value).backward()  # the D-SSIM loss
    assert rendered.grad is not None and rendered.grad[53:64, 0:11].abs().sum() > 0 and not rendered.grad[:50].any()


def test_bad_inputs_are_refused():
    target, rendered, mask = _images()
    with pytest.raises(ValueError, match="empty"):
        masked_psnr(rendered, target, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        masked_ssim(rendered[..., :2], target[..., :2], mask)
    with pytest.raises(ValueError, match="mask must be"):
        masked_psnr(rendered, target, mask[:10])
    with pytest.raises(ValueError, match="at least 11x11"):
        masked_ssim(rendered[:8, :8], target[:8, :8], mask[:8, :8] | True)
