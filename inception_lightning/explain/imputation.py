"""Noisy linear imputation (Rong et al. 2022, ROAD, sect. 4), batched on the device.

Removed pixels are filled so that each is the weighted mean of its 8 neighbours (weights 1/6
for the 4 direct and 1/12 for the 4 diagonal ones, only those inside the frame), then Gaussian
noise is added to them. Known pixels keep their values. For the removed pixels `u` this is the
sparse linear system `(diag(w) - W_uu) u = W_uk x_k` per image and channel, with `w` the sum of
the in-frame neighbour weights: a discrete Laplace equation with the known pixels as boundary.

The reference implementation (road_evaluation, also in pytorch-grad-cam and Quantus) assembles
that system per image in SciPy and solves it directly on the CPU. Here the same system is solved
for a whole batch at once with the conjugate-gradient method (the matrix is symmetric and
positive definite wherever a removed region touches a known pixel), applying the matrix as one
fixed 3x3 convolution. Plain CG needs about three iterations per pixel of a hole's diameter, so
it starts from a coarse-to-fine guess (cascadic CG, Bornemann & Deuflhard 1996): the system on
2x average-pooled grids, smallest first, each solution upsampled as the next one's start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DIRECT, DIAGONAL = 1 / 6, 1 / 12
NOISE = 0.01
"""The noise's standard deviation in model-input units (road_evaluation's default)."""
TOLERANCE = 1e-4
"""CG stops once no removed pixel differs from its neighbours' weighted mean by more than this,
or after `MAX_ITERATIONS` per grid: on 79 px white-noise images with 90% of the pixels removed
(the hardest case) the filled pixels then lie within 5e-4 of SciPy's exact solve, a twentieth
of ROAD's noise (`tests/test_quantus_parity.py` solves to 1e-6 against Quantus's)."""
MAX_ITERATIONS = 128
COARSEST = 8


def neighbour_kernel(
    device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """ROAD's 3x3 neighbour weights, zero at the centre, `[1, 1, 3, 3]`."""
    kernel = torch.tensor(
        [[DIAGONAL, DIRECT, DIAGONAL], [DIRECT, 0.0, DIRECT], [DIAGONAL, DIRECT, DIAGONAL]],
        device=device,
        dtype=dtype,
    )
    return kernel.view(1, 1, 3, 3)


def linear_imputation(
    images: Tensor,
    removed: Tensor,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> Tensor:
    """The images with their removed pixels solved for, without noise.

    Args:
        images: `[N, C, H, W]`.
        removed: boolean `[N, H, W]`: the pixels to fill (all channels). A removed region that
            touches no known pixel (the whole image removed) has no unique solution and is
            filled with zeros.
        tolerance: the largest residual accepted, in the images' units.
        max_iterations: CG iterations per grid level at most.
    """
    if removed.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(
            f"removed must be [N, H, W] = {(images.shape[0], *images.shape[-2:])}, "
            f"got {tuple(removed.shape)}"
        )
    unknown = removed[:, None].to(images.dtype).expand_as(images)
    start = torch.zeros_like(images)
    if min(images.shape[-2:]) >= 2 * COARSEST:
        # coarse grid: the known pixels' mean per 2x2 cell; a cell is known if any pixel is
        known = 1 - unknown
        weight = F.avg_pool2d(known, 2, ceil_mode=True)
        coarse = F.avg_pool2d(images * known, 2, ceil_mode=True) / weight.clamp(min=1e-12)
        coarse_unknown = (weight == 0).all(dim=1)
        solved = linear_imputation(coarse, coarse_unknown, tolerance, max_iterations)
        start = F.interpolate(solved, size=images.shape[-2:], mode="bilinear", align_corners=False)
    filled = _conjugate_gradient(images, unknown, start * unknown, tolerance, max_iterations)
    return images * (1 - unknown) + filled * unknown


def noisy_linear_imputation(
    images: Tensor,
    removed: Tensor,
    noise: float = NOISE,
    generator: torch.Generator | None = None,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> Tensor:
    """`linear_imputation` plus Gaussian noise of standard deviation `noise` on the removed
    pixels (ROAD's noisy linear imputation).

    Args:
        images: `[N, C, H, W]`.
        removed: boolean `[N, H, W]`.
        noise: the standard deviation, in the images' units.
        generator: draws the noise (on the images' device); None: the global generator.
        tolerance: see `linear_imputation`.
        max_iterations: see `linear_imputation`.
    """
    filled = linear_imputation(images, removed, tolerance, max_iterations)
    if noise == 0:
        return filled
    draw = torch.randn(filled.shape, generator=generator, device=filled.device, dtype=filled.dtype)
    return filled + noise * draw * removed[:, None].to(filled.dtype)


def _conjugate_gradient(
    images: Tensor, unknown: Tensor, start: Tensor, tolerance: float, max_iterations: int
) -> Tensor:
    """Solve `(diag(w) - W_uu) u = W_uk x_k` per image and channel, from `start`."""
    _, c, h, w = images.shape
    kernel = neighbour_kernel(images.device, images.dtype).expand(c, 1, 3, 3)

    def neighbours(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, padding=1, groups=c)

    in_frame = neighbours(torch.ones(1, c, h, w, device=images.device, dtype=images.dtype))

    def apply(u: Tensor) -> Tensor:
        return (in_frame * u - neighbours(u)) * unknown

    rhs = neighbours(images * (1 - unknown)) * unknown
    u = start
    r = rhs - apply(u)
    p = r.clone()
    rs = (r * r).sum(dim=(2, 3), keepdim=True)
    for _ in range(max_iterations):
        if float(r.abs().amax()) <= tolerance:
            break
        ap = apply(p)
        curvature = (p * ap).sum(dim=(2, 3), keepdim=True)
        alpha = torch.where(curvature > 0, rs / curvature.clamp(min=1e-30), 0.0)
        u = u + alpha * p
        r = r - alpha * ap
        rs_next = (r * r).sum(dim=(2, 3), keepdim=True)
        p = r + torch.where(rs > 0, rs_next / rs.clamp(min=1e-30), 0.0) * p
        rs = rs_next
    return u
