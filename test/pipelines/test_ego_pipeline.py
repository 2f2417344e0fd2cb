"""The ego pipeline end to end on synthetic RGB-D sequences with ground truth (oracle landmarks).

Oracle landmarks take the detector out, so these tests pin the geometry: placement, fitting, tracking,
odometry, mapping and the camera/world bookkeeping. The detector itself is covered in test/backends.
"""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.core import metrics
from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.fitting import retarget_bone_lengths
from hand_scene_perception.core.hand_model import MEDIAPIPE_PARENTS
from hand_scene_perception.core.tracking import TrackerConfig
from hand_scene_perception.eval.ego import observed_surface
from hand_scene_perception.pipelines.ego import EgoConfig, EgoFrame, EgoPipeline, hand_pixel_mask
from hand_scene_perception.synth.oracle import OracleDetector
from hand_scene_perception.synth.sequence import generate_sequence, stamp_ns


@pytest.fixture(scope="module")
def frames():
    return list(generate_sequence(3, 24, num_hands=2))


@pytest.fixture(scope="module")
def run(frames):
    """Results of one oracle run (2 px landmark noise) over the fixture frames."""
    detector = OracleDetector(noise_px=2.0, seed=0)
    results = []
    with EgoPipeline(detector=detector) as pipeline:
        for frame in frames:
            detector.frame = frame
            results.append(pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame), frame.depth)))
        map_points = pipeline.map.points()
    return results, map_points


def _nearest_truth(hand, frame):
    visible = [t for t in frame.hands if t.visible]
    return min(visible, key=lambda t: np.linalg.norm(t.joints_cam[0] - hand.camera.joints[0]))


def test_hands_are_metric_in_camera_and_world(run, frames):
    results, _ = run
    errors_cam, errors_world = [], []
    world_from_truth = np.linalg.inv(frames[0].T_world_camera)  # the pipeline's world is the first camera
    for result, frame in zip(results, frames, strict=True):
        assert len(result.hands) == sum(t.visible for t in frame.hands)
        for hand in result.hands:
            truth = _nearest_truth(hand, frame)
            assert hand.side is truth.side
            errors_cam.append(metrics.mpjpe_mm(hand.camera.joints, truth.joints_cam))
            truth_world = truth.joints_world @ world_from_truth[:3, :3].T + world_from_truth[:3, 3]
            errors_world.append(metrics.mpjpe_mm(hand.world.joints, truth_world))
            # the two frames describe the same hand: world = T_world_camera · camera
            pose = result.T_world_camera
            np.testing.assert_allclose(hand.camera.joints @ pose[:3, :3].T + pose[:3, 3], hand.world.joints, atol=1e-6)
    assert np.mean(errors_cam) < 15.0, f"C-MPJPE {np.mean(errors_cam):.1f} mm"
    assert np.mean(errors_world) < 15.0


def test_mesh_and_parameters_agree(run):
    results, _ = run
    hand = results[-1].hands[0]
    for state in (hand.camera, hand.world):
        assert state.vertices is not None and state.vertices.shape[1] == 3
        # joints come from the same posed model: the wrist sits inside the mesh's bounding box
        low, high = state.vertices.min(axis=0), state.vertices.max(axis=0)
        assert np.all(state.joints[0] > low - 0.01) and np.all(state.joints[0] < high + 0.01)
        np.testing.assert_allclose(state.wrist_pose[:3, 3], state.joints[0], atol=1e-9)


def test_track_ids_are_stable(run):
    results, _ = run
    ids = [sorted(h.track_id for h in r.hands) for r in results if len(r.hands) == 2]
    assert len(ids) > 10 and all(i == ids[0] for i in ids), "track ids changed while both hands stayed in view"


def test_camera_trajectory_and_map(run, frames):
    results, map_points = run
    poses = np.array([r.T_world_camera for r in results])
    truth = np.array([f.T_world_camera for f in frames])
    # world = first camera pose: compare relative to the first frame
    relative_truth = np.linalg.inv(truth[0]) @ truth
    assert metrics.ate_m(poses, relative_truth, align="none") < 0.01
    assert all(r.odometry.ok for r in results[1:])
    assert len(map_points) > 1000 and any(r.map_points_added > 0 for r in results[1:])
    # every map voxel lies on the scene the camera saw (ground-truth depth fused with ground-truth poses)
    in_truth_world = map_points @ truth[0][:3, :3].T + truth[0][:3, 3]
    observed = observed_surface(frames, voxel_size=0.01)
    assert metrics.accuracy_m(in_truth_world, observed) < 0.015


@pytest.mark.parametrize(("rate_hz", "fused_every"), [(10.0, 3), (15.0, 2), (0.0, 1)])
def test_map_fusion_rate_picks_frames_by_their_stamps(frames, rate_hz, fused_every):
    """A 30 Hz sequence: 10 Hz fuses every third frame, 15 Hz every second, 0 every frame; odometry tracks all."""
    detector = OracleDetector(noise_px=0.0)
    with EgoPipeline(EgoConfig(map_fusion_rate_hz=rate_hz), detector=detector) as pipeline:
        results = []
        for frame in frames[:9]:
            detector.frame = frame
            results.append(pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame), frame.depth)))
    assert [r.map_points_added > 0 for r in results] == [i % fused_every == 0 for i in range(9)]
    assert all(r.odometry.ok for r in results[1:])


def test_map_fusion_rate_must_not_be_negative():
    with pytest.raises(ValueError, match="map_fusion_rate_hz"):
        EgoConfig(map_fusion_rate_hz=-1.0)


def test_time_jump_back_starts_a_new_session(frames):
    detector = OracleDetector(noise_px=0.0)
    with EgoPipeline(detector=detector) as pipeline:
        for frame in frames[:5]:
            detector.frame = frame
            pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame, 10**9), frame.depth))
        detector.frame = frames[5]
        result = pipeline.process(EgoFrame(frames[5].rgb, frames[5].camera, 0, frames[5].depth))
        assert result.session_reset is not None and "new session" in result.session_reset
        np.testing.assert_allclose(result.T_world_camera, np.eye(4))


def test_bad_input_is_rejected_without_losing_state(frames):
    detector = OracleDetector(noise_px=0.0)
    frame = frames[0]
    with EgoPipeline(detector=detector) as pipeline:
        detector.frame = frame
        pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame), frame.depth))
        size = len(pipeline.map)
        other = PinholeCamera.from_intrinsics(500, 500, 160, 120, 320, 240)
        with pytest.raises(ValueError, match="camera is 320x240"):
            pipeline.process(EgoFrame(frame.rgb, other, stamp_ns(frame) + 1, frame.depth))
        with pytest.raises(ValueError, match="uint8"):
            pipeline.process(EgoFrame(frame.rgb.astype(np.float32), frame.camera, stamp_ns(frame) + 1, None))
        with pytest.raises(ValueError, match="depth"):
            pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame) + 1, np.zeros((4, 4, 3))))
        assert len(pipeline.map) == size


def test_hand_mask_covers_hand_and_forearm():
    landmarks = np.zeros((21, 2))
    landmarks[:, 0] = np.linspace(140, 180, 21)  # x: a hand 40 px wide ...
    landmarks[:, 1] = np.linspace(100, 40, 21)  # ... fingers up, wrist (joint 0) lowest at row 100
    landmarks[9] = [160, 70]  # middle MCP up and to the right of the wrist
    mask = hand_pixel_mask([landmarks], 240, 320, margin_px=5)
    assert mask[70, 160] and mask[50, 175]  # inside the hand
    assert mask[140, 113]  # on the forearm: from the wrist (140, 100) away from the middle MCP (160, 70)
    assert mask[235, 50]  # ... all the way to the image border, where the arm enters an egocentric view
    assert not mask[235, 130] and not mask[200, 10]  # beside the forearm band
    assert not mask[20, 300] and not mask[20, 20]


def test_temporal_prior_and_wrist_filter_steady_a_still_hand(frames):
    """A hand held still under 2 px landmark noise: the wrist's filter steadies the wrist and the fitter's temporal
    prior the articulation (the hand does not move, so all frame-to-frame change is jitter)."""
    still = frames[0]
    unfiltered = TrackerConfig(filters={"rotation": None, "articulation": None, "shape": None, "wrist": None})
    jitter = {}
    for name, config in (("default", EgoConfig()),
                         ("plain", EgoConfig(tracker=unfiltered, fit_temporal_sigma_rad=1e3))):
        detector = OracleDetector(noise_px=2.0, seed=0)
        detector.frame = still
        joints = []
        with EgoPipeline(config, detector=detector) as pipeline:
            for k in range(20):
                result = pipeline.process(EgoFrame(still.rgb, still.camera, stamp_ns(still) + k * 33_000_000,
                                                   still.depth))
                joints.append(next(h for h in result.hands if h.side.value == "right").camera.joints)
        joints = np.array(joints[5:])  # after the filters settled
        relative = joints - joints[:, :1]
        jitter[name] = (np.linalg.norm(joints[:, 0] - joints[:, 0].mean(axis=0), axis=-1).mean(),
                        np.linalg.norm(relative - relative.mean(axis=0), axis=-1).mean())
    assert jitter["default"][0] < 0.5 * jitter["plain"][0], jitter  # the wrist
    assert jitter["default"][1] < 0.9 * jitter["plain"][1], jitter  # the fingers about it


def test_rgb_only_places_hands_from_intrinsics_and_builds_no_dense_map(frames):
    detector = OracleDetector(noise_px=2.0)
    errors = []
    with EgoPipeline(detector=detector) as pipeline:
        for frame in frames:
            detector.frame = frame
            result = pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame), None))
            for hand in result.hands:
                errors.append(metrics.mpjpe_mm(hand.camera.joints, _nearest_truth(hand, frame).joints_cam))
            np.testing.assert_allclose(result.T_world_camera[:3, :3] @ result.T_world_camera[:3, :3].T, np.eye(3),
                                       atol=1e-9)
        assert len(pipeline.map) == 0 and result.map_points_added == 0
    assert len(errors) > 30 and np.mean(errors) < 15.0


class WrongProportionsDetector(OracleDetector):
    """Oracle landmarks whose hand-centred joints keep the true bone directions but have MediaPipe's proportions on
    real hands (metacarpals 25 % long, finger bones 25 % short) and an uncertain metric size (15 % too big)."""

    metric_size_sigma = 0.3

    def detect(self, image_rgb, timestamp_ns=None):
        out = []
        for detection in super().detect(image_rgb, timestamp_ns):
            true = detection.world_landmarks_m
            lengths = true.copy()
            for child, parent in enumerate(MEDIAPIPE_PARENTS):
                if parent >= 0:
                    factor = 1.25 if parent == 0 else 0.75
                    lengths[child] = lengths[parent] + factor * (true[child] - true[parent])
            joints = 1.15 * retarget_bone_lengths(true, lengths)
            out.append(HandDetection(detection.side, detection.score, detection.landmarks_px, joints))
        return out


@pytest.mark.parametrize("depth", [True, False])
def test_an_approximate_detectors_proportions_and_size_are_not_trusted(frames, depth):
    """With a detector of uncertain metric size the fit keeps its bone directions and the average hand's
    proportions and size; trusting the same detector (size sigma 0) fits its errors."""
    errors = {}
    for size_sigma in (0.0, None):
        detector = WrongProportionsDetector(noise_px=2.0, seed=0)
        found = []
        with EgoPipeline(EgoConfig(detector_size_sigma=size_sigma), detector=detector) as pipeline:
            for frame in frames[:12]:
                detector.frame = frame
                result = pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame),
                                                   frame.depth if depth else None))
                found += [metrics.mpjpe_mm(h.camera.joints, _nearest_truth(h, frame).joints_cam) for h in result.hands]
        errors[size_sigma] = np.mean(found)
    print(f"C-MPJPE trusting the detector {errors[0.0]:.1f} mm, not {errors[None]:.1f} mm")
    assert errors[None] < 0.7 * errors[0.0]
