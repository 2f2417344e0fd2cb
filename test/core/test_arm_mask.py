"""The arm behind a hand, found in depth: the forearm is masked, a grasped object and the background are not."""

from __future__ import annotations

import numpy as np

from hand_scene_perception.core.arm_mask import arm_pixel_mask

FOCAL = 500.0


def _scene():
    """Background wall at 1 m; a vertical hand at 0.5 m (wrist at (320, 300), fingers up to row 150), a forearm
    band from the wrist down to the image border, a box at 0.5 m touching the fingertips, and the landmarks."""
    depth = np.full((480, 640), 1.0, np.float32)
    depth[300:, 295:345] = 0.5  # forearm, 50 px wide, down to the border
    depth[150:310, 285:355] = 0.5  # palm + fingers
    depth[60:152, 260:380] = 0.5  # a box the fingertips touch, same depth
    landmarks = np.zeros((21, 2))
    landmarks[0] = [320, 300]
    for finger, x in zip(range(5), (290, 305, 320, 335, 350), strict=True):
        for joint in range(4):
            landmarks[1 + 4 * finger + joint] = [x, 250 - 30 * joint]
    return depth, landmarks


def test_forearm_is_found_and_grasped_object_and_background_are_not():
    depth, landmarks = _scene()
    mask = arm_pixel_mask(depth, [landmarks], FOCAL)
    assert mask[300:480, 300:340].mean() > 0.95  # the forearm, all the way to the border
    assert not mask[60:140, 260:380].any()  # the box the fingertips touch
    assert mask[depth == 1.0].mean() < 0.01  # the wall (only the dilated silhouette edge)


def test_reach_is_metric():
    depth, landmarks = _scene()
    near = arm_pixel_mask(depth, [landmarks], FOCAL)
    # With a 4x shorter focal length 0.6 m at 0.5 m depth spans 150 px: the fill stops before the border.
    far = arm_pixel_mask(depth, [landmarks], FOCAL / 4)
    assert near[470, 320] and not far[470, 320] and far[400, 320]


def test_unusable_input_gives_an_empty_mask():
    depth, landmarks = _scene()
    assert not arm_pixel_mask(np.zeros_like(depth), [landmarks], FOCAL).any()  # no depth
    assert not arm_pixel_mask(np.full_like(depth, np.nan), [landmarks], FOCAL).any()
    missing = landmarks.copy()
    missing[9] = np.nan
    assert not arm_pixel_mask(depth, [missing], FOCAL).any()
    assert not arm_pixel_mask(depth, [landmarks[:5]], FOCAL).any()  # wrong shape
    assert not arm_pixel_mask(depth, [], FOCAL).any()
    # A wrist over the background (the hand's knuckles are far from it in depth): no seed, no fill.
    shifted = landmarks.copy()
    shifted[0] = [100, 400]
    assert not arm_pixel_mask(depth, [shifted], FOCAL)[350:, :200].any()
