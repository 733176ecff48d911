"""Rendering of synthetic metal surfaces with defects, for the synthetic camera and model training.

A surface is a near-grey base tone with a brushed or grainy finish, fine sensor grain and an
uneven illumination ramp. Defects are painted on top, then the camera effects (brightness gain
and Gaussian blur) are applied, so a lighting schedule acts on the whole scene as a real camera
would. Sizes are given for a 256 px frame and scale with the shorter side of the frame.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

DEFECT_KINDS: tuple[str, ...] = ("scratch", "pit", "inclusion", "stain")
"""Defect kinds the renderer can paint; `None` as kind renders a good (ok) surface."""

REFERENCE_SIZE_PX = 256

# Discolouration directions of stains in BGR: rust, oil film (bluish) and heat tint (brownish).
_STAIN_TINTS_BGR = (
    np.array([-1.0, -0.55, 0.15], dtype=np.float32),
    np.array([0.6, -0.1, -0.7], dtype=np.float32),
    np.array([-0.9, -0.35, -0.05], dtype=np.float32),
)


def render_surface(
    rng: np.random.Generator,
    width_px: int,
    height_px: int,
    kind: str | None,
    brightness_gain: float = 1.0,
    blur_sigma_px: float = 0.0,
) -> np.ndarray:
    """Render one surface image as a BGR uint8 array of shape (height_px, width_px, 3).

    `kind` is None for a good surface or one of `DEFECT_KINDS`. `brightness_gain` multiplies
    every pixel after the defect is painted and `blur_sigma_px` is the Gaussian blur applied last,
    as a camera that lost focus would.
    """
    if kind is not None and kind not in DEFECT_KINDS:
        raise ValueError(
            f"unknown defect kind {kind!r}; use None for a good surface "
            f"or one of {list(DEFECT_KINDS)}"
        )
    if width_px < 8 or height_px < 8:
        raise ValueError(f"surface size {width_px}x{height_px} px is too small; use at least 8x8")
    if brightness_gain <= 0:
        raise ValueError(f"brightness_gain must be above 0, got {brightness_gain}")
    if blur_sigma_px < 0:
        raise ValueError(f"blur_sigma_px must be 0 or more, got {blur_sigma_px}")

    scale = min(width_px, height_px) / REFERENCE_SIZE_PX
    surface = _paint_background(rng, width_px, height_px, scale)
    if kind is not None:
        _PAINTERS[kind](rng, surface, scale)

    surface *= brightness_gain
    if blur_sigma_px > 0:
        surface = cv2.GaussianBlur(surface, (0, 0), blur_sigma_px)
    return np.clip(surface + 0.5, 0, 255).astype(np.uint8)


def _paint_background(
    rng: np.random.Generator, width_px: int, height_px: int, scale: float
) -> np.ndarray:
    base = rng.uniform(95.0, 165.0)
    tint_bgr = rng.uniform(-6.0, 6.0, size=3).astype(np.float32)

    finish: np.ndarray
    if rng.random() < 0.6:
        finish = _brushed_noise(rng, width_px, height_px, scale) * rng.uniform(4.0, 9.0)
    else:
        noise = rng.standard_normal((height_px, width_px)).astype(np.float32)
        finish = cv2.GaussianBlur(noise, (0, 0), 1.2 * max(scale, 0.5)) * rng.uniform(6.0, 12.0)
    grain = rng.normal(0.0, rng.uniform(1.5, 4.0), (height_px, width_px)).astype(np.float32)

    # Uneven illumination: a linear ramp of up to +-12 grey levels across the frame.
    ys = np.linspace(-0.5, 0.5, height_px, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, width_px, dtype=np.float32)[None, :]
    ramp = xs * rng.uniform(-24.0, 24.0) + ys * rng.uniform(-24.0, 24.0)

    grey = base + finish + grain + ramp
    return grey[..., None] + tint_bgr[None, None, :]


def _brushed_noise(
    rng: np.random.Generator, width_px: int, height_px: int, scale: float
) -> np.ndarray:
    """Return unit-variance noise smeared along one random direction, like a brushed finish."""
    length = max(3, int(round(31 * scale)) | 1)
    angle = rng.uniform(0.0, np.pi)
    kernel = np.zeros((length, length), dtype=np.float32)
    half = (length - 1) / 2
    dx, dy = np.cos(angle) * half, np.sin(angle) * half
    start = (int(round(half - dx)), int(round(half - dy)))
    end = (int(round(half + dx)), int(round(half + dy)))
    cv2.line(kernel, start, end, 1.0, 1)
    taps = float(kernel.sum())
    kernel /= taps

    noise = rng.standard_normal((height_px, width_px)).astype(np.float32)
    smeared = cv2.filter2D(noise, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return smeared * np.float32(np.sqrt(taps))


def _new_mask(surface: np.ndarray) -> np.ndarray:
    return np.zeros(surface.shape[:2], dtype=np.uint8)


def _apply_mask(surface: np.ndarray, mask: np.ndarray, delta_bgr: np.ndarray) -> None:
    weight = mask.astype(np.float32) / 255.0
    surface += weight[..., None] * delta_bgr[None, None, :]


def _paint_scratch(rng: np.random.Generator, surface: np.ndarray, scale: float) -> None:
    height_px, width_px = surface.shape[:2]
    length = rng.uniform(0.45, 0.9) * min(width_px, height_px)
    angle = rng.uniform(0.0, np.pi)
    center = np.array([rng.uniform(0.3, 0.7) * width_px, rng.uniform(0.3, 0.7) * height_px])
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])

    # A slight bend through a jittered midpoint, as a tool slipping over the surface leaves.
    bend = rng.uniform(-0.04, 0.04) * length
    points = np.array(
        [center - direction * length / 2, center + normal * bend, center + direction * length / 2]
    )
    mask = _new_mask(surface)
    thickness = 1 if scale < 1.5 else int(round(scale))
    cv2.polylines(mask, [np.round(points).astype(np.int32)], False, 255, thickness, cv2.LINE_AA)

    contrast = rng.uniform(35.0, 70.0) * (1.0 if rng.random() < 0.5 else -1.0)
    _apply_mask(surface, mask, np.full(3, contrast, dtype=np.float32))


def _paint_pits(rng: np.random.Generator, surface: np.ndarray, scale: float) -> None:
    height_px, width_px = surface.shape[:2]
    mask = _new_mask(surface)
    margin = 0.1
    for _ in range(int(rng.integers(1, 5))):
        center = (
            int(rng.uniform(margin, 1 - margin) * width_px),
            int(rng.uniform(margin, 1 - margin) * height_px),
        )
        radius = max(1, int(round(rng.uniform(3.0, 6.5) * scale)))
        cv2.circle(mask, center, radius, 255, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.8 * max(scale, 0.5))

    depth = rng.uniform(55.0, 95.0)
    _apply_mask(surface, mask, np.full(3, -depth, dtype=np.float32))


def _paint_inclusion(rng: np.random.Generator, surface: np.ndarray, scale: float) -> None:
    height_px, width_px = surface.shape[:2]
    length = rng.uniform(22.0, 48.0) * scale
    width = rng.uniform(5.0, 10.0) * scale
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    center = np.array([rng.uniform(0.2, 0.8) * width_px, rng.uniform(0.2, 0.8) * height_px])

    # Overlapping lumps along the major axis make the outline irregular.
    mask = _new_mask(surface)
    lumps = int(rng.integers(4, 8))
    for offset in np.linspace(-0.5, 0.5, lumps):
        lump_center = center + direction * offset * length + rng.normal(0.0, width * 0.2, size=2)
        axes = (
            max(1, int(round(length / lumps * rng.uniform(0.8, 1.3)))),
            max(1, int(round(width / 2 * rng.uniform(0.6, 1.2)))),
        )
        lump_angle = np.degrees(angle) + rng.uniform(-20.0, 20.0)
        cv2.ellipse(
            mask,
            tuple(np.round(lump_center).astype(int)),
            axes,
            lump_angle,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0 * max(scale, 0.5))

    darkness = rng.uniform(45.0, 85.0)
    _apply_mask(surface, mask, np.array([-darkness, -darkness * 0.95, -darkness * 0.9], np.float32))


def _paint_stain(rng: np.random.Generator, surface: np.ndarray, scale: float) -> None:
    height_px, width_px = surface.shape[:2]
    center = (int(rng.uniform(0.25, 0.75) * width_px), int(rng.uniform(0.25, 0.75) * height_px))
    axes = (int(rng.uniform(35.0, 80.0) * scale), int(rng.uniform(30.0, 70.0) * scale))
    mask = _new_mask(surface)
    cv2.ellipse(mask, center, axes, rng.uniform(0.0, 180.0), 0, 360, 255, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.35 * min(axes))

    tint = _STAIN_TINTS_BGR[int(rng.integers(len(_STAIN_TINTS_BGR)))]
    amplitude = rng.uniform(22.0, 38.0)
    _apply_mask(surface, mask, tint * amplitude - rng.uniform(4.0, 12.0))


_PAINTERS: dict[str, Callable[[np.random.Generator, np.ndarray, float], None]] = {
    "scratch": _paint_scratch,
    "pit": _paint_pits,
    "inclusion": _paint_inclusion,
    "stain": _paint_stain,
}
