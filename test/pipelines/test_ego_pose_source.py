"""EgoConfig.camera_pose_source: a camera pose given with each frame (tf) or none at all (static) instead of odometry.

The sequences' ground-truth poses stand in for TF: the hands and the map must come out in that pose's world, and
no odometry may run (the trackers are replaced by ones that fail the test when called).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core import metrics
from hand_scene_perception.eval.ego import observed_surface
from hand_scene_perception.pipelines.ego import EgoConfig, EgoFrame, EgoPipeline
from hand_scene_perception.synth.oracle import OracleDetector
from hand_scene_perception.synth.sequence import default_camera, generate_sequence, stamp_ns

FRAMES = 8
# A rig's camera somewhere in its world, far from the identity (any rigid pose would do).
STATIC_POSE = np.eye(4)
STATIC_POSE[:3, :3] = Rotation.from_euler("x", -120, degrees=True).as_matrix()
STATIC_POSE[:3, 3] = [0.3, -0.2, 1.2]


@pytest.fixture(scope="module")
def frames():
    return list(generate_sequence(5, FRAMES, num_hands=1, camera=default_camera(320, 240)))


def _no_odometry(pipeline: EgoPipeline) -> None:
    """Make any odometry call fail the frame (and so the test)."""

    def fail(*args, **kwargs):
        raise AssertionError("odometry ran")

    pipeline._rgbd.track = fail
    pipeline._mono.track = fail
    pipeline._mono.add_scale_hint = fail


def _run(frames, config: EgoConfig, depth: bool, given_pose: bool):
    detector = OracleDetector(noise_px=0.5, seed=0)
    results = []
    with EgoPipeline(config, detector=detector) as pipeline:
        _no_odometry(pipeline)
        for frame in frames:
            detector.frame = frame
            pose = frame.T_world_camera if given_pose else None
            results.append(pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame),
                                                     frame.depth if depth else None, T_world_camera=pose)))
        return results, pipeline.map.points()


@pytest.mark.parametrize("depth", [True, False])
def test_a_given_pose_places_hands_and_map_in_its_world(frames, depth):
    results, map_points = _run(frames, EgoConfig(camera_pose_source="tf"), depth, given_pose=True)
    errors = []
    for result, frame in zip(results, frames, strict=True):
        np.testing.assert_allclose(result.T_world_camera, frame.T_world_camera, atol=1e-12)
        assert result.odometry.ok and result.odometry.status == "camera pose from tf"
        (truth,) = frame.hands
        for hand in result.hands:
            # The world hand is the camera-frame hand moved by the given pose ...
            pose = frame.T_world_camera
            np.testing.assert_allclose(hand.camera.joints @ pose[:3, :3].T + pose[:3, 3], hand.world.joints, atol=1e-9)
            # ... and that pose is the generator's world: the hand lands on the true world joints.
            errors.append(metrics.mpjpe_mm(hand.world.joints, truth.joints_world))
    assert len(errors) >= FRAMES - 1 and np.mean(errors) < 15.0, f"W-MPJPE {np.mean(errors):.1f} mm"
    if depth:  # the map is fused at the given poses, in the generator's world
        assert len(map_points) > 500
        assert metrics.accuracy_m(map_points, observed_surface(frames, voxel_size=0.01)) < 0.015
    else:
        assert len(map_points) == 0


@pytest.mark.parametrize("depth", [True, False])
def test_a_static_camera_stays_at_the_initial_pose_and_runs_no_odometry(frames, depth):
    config = EgoConfig(camera_pose_source="static", initial_pose=STATIC_POSE)
    results, map_points = _run(frames, config, depth, given_pose=False)
    errors = []
    for result, frame in zip(results, frames, strict=True):
        np.testing.assert_allclose(result.T_world_camera, STATIC_POSE)
        (truth,) = frame.hands
        for hand in result.hands:
            expected = truth.joints_cam @ STATIC_POSE[:3, :3].T + STATIC_POSE[:3, 3]
            errors.append(metrics.mpjpe_mm(hand.world.joints, expected))
    assert len(errors) >= FRAMES - 1 and np.mean(errors) < 15.0
    assert (len(map_points) > 500) is depth  # with depth the fixed camera still maps (at its pose)


def test_the_pose_given_must_match_the_source(frames):
    frame = frames[0]
    detector = OracleDetector(noise_px=0.0)
    detector.frame = frame
    with pytest.raises(ValueError, match="camera_pose_source"):
        EgoConfig(camera_pose_source="gps")
    with pytest.raises(ValueError, match="T_world_camera"):
        EgoFrame(frame.rgb, frame.camera, 1, T_world_camera=np.diag([2.0, 1.0, 1.0, 1.0]))  # not rigid
    with EgoPipeline(EgoConfig(camera_pose_source="tf"), detector=detector) as pipeline:
        with pytest.raises(ValueError, match="must bring its T_world_camera"):
            pipeline.process(EgoFrame(frame.rgb, frame.camera, 5, frame.depth))
        assert pipeline._last_stamp is None  # rejected before any state changed
        result = pipeline.process(EgoFrame(frame.rgb, frame.camera, 5, frame.depth, frame.T_world_camera))
        assert len(result.hands) == 1
    with EgoPipeline(detector=detector) as pipeline, pytest.raises(ValueError, match="tf only, not odometry"):
        pipeline.process(EgoFrame(frame.rgb, frame.camera, 5, frame.depth, frame.T_world_camera))
