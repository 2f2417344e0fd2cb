"""Pixels the hands cover (and the forearm beyond them), kept out of odometry and the scene map."""

from __future__ import annotations

import cv2
import numpy as np

# Forearm band masked beyond the wrist, in wrist-to-middle-knuckle lengths: without depth, a guess along the
# hand's axis that reaches the image border; with depth, only the wrist (core/arm_mask finds the arm itself).
FOREARM_LENGTHS = 5.0
FOREARM_LENGTHS_WITH_DEPTH = 1.0


def hand_pixel_mask(
    landmarks: list[np.ndarray], height: int, width: int, margin_px: int, forearm_lengths: float = FOREARM_LENGTHS
) -> np.ndarray:
    """(H, W) bool mask covering each hand's landmark hull and its forearm, grown by margin_px.

    Hands and arms move independently of the scene, so odometry and mapping must not use these pixels.
    The forearm continues from the wrist away from the fingers as a band as wide as the palm (widened by
    a third for the sleeve), ``forearm_lengths`` wrist-to-middle-knuckle lengths long: by default far enough
    to reach the image border in an egocentric view, where the arm enters. The margin is added to each
    polygon's corners (a disc of 16 points each) before filling: the hull of the grown corners is the
    dilated polygon, at a fraction of the cost of dilating the whole image.
    """
    mask = np.zeros((height, width), np.uint8)
    angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    disc = margin_px * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for points in landmarks:
        pts = np.asarray(points, np.float64)
        if pts.shape != (21, 2):
            continue
        finite = np.all(np.isfinite(pts), axis=1)
        polygons = [pts[finite]] if finite.sum() >= 3 else []
        if finite[[0, 5, 9, 17]].all():
            along = pts[0] - pts[9]
            across = np.array([-along[1], along[0]]) / max(float(np.linalg.norm(along)), 1e-9)
            half_width = 0.65 * float(np.linalg.norm(pts[5] - pts[17])) * across
            far = pts[0] + forearm_lengths * along
            polygons.append(np.stack([pts[0] + half_width, pts[0] - half_width, far - half_width, far + half_width]))
        for polygon in polygons:
            grown = (polygon[:, None, :] + disc[None]).reshape(-1, 2).astype(np.float32)
            cv2.fillConvexPoly(mask, cv2.convexHull(grown).astype(np.int32), 1)
    return mask.astype(bool)
