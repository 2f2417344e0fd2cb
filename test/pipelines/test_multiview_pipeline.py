"""Multiview pipeline on synthetic rigs with oracle landmarks: self-calibration, fusion, persistence, bad input."""

import numpy as np
import pytest
import yaml

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.core import metrics
from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.hand_model import HandSide
from hand_scene_perception.core.rig_calibration import CalibrationConfig, CalibrationHold, RigState
from hand_scene_perception.eval.multiview import (
    OracleViewDetector,
    camera_errors,
    evaluate_multiview_sequence,
)
from hand_scene_perception.pipelines.multiview import MultiviewConfig, MultiviewPipeline, ViewFrame
from hand_scene_perception.synth.multiview import MultiViewFrame, MultiViewSequence

NS = 1_000_000_000
# adjustments inside process(): results independent of thread timing
SYNC = MultiviewConfig(background_calibration=False)


class ScriptedDetector:
    """Detections computed by the test for each frame (e.g. from a camera that was moved)."""

    metric_size_sigma = 0.0

    def __init__(self) -> None:
        self.detections: list[HandDetection] = []

    def detect(self, image_rgb, timestamp_ns=None):
        return self.detections


def detections_from(joints_world, sides, camera: PinholeCamera, world_to_camera: np.ndarray, rng, noise_px=2.0):
    """What an oracle detector in a camera at ``world_to_camera`` reports (hands fully in the image only)."""
    found = []
    for joints, side in zip(joints_world, sides, strict=True):
        cam = joints @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
        pixels = camera.project(cam)
        inside = np.all(cam[:, 2] > 0) and np.all(pixels >= 0) and np.all(pixels < [camera.width, camera.height])
        if inside:
            found.append(HandDetection(side, 1.0, pixels + rng.normal(0, noise_px, pixels.shape), cam - cam.mean(0)))
    return found


def blank(view) -> np.ndarray:
    return np.zeros((view.camera.height, view.camera.width, 3), np.uint8)


def run_oracle(pipeline, sequence, detectors, num_frames, start=0, views=None):
    """Feed frames ``start``..``start + num_frames - 1`` seen by ``views`` (default: all); returns the last result."""
    views = sequence.views if views is None else views
    result = None
    for frame in sequence.frames(start + num_frames, render=False):
        if frame.index < start:
            continue
        for detector in detectors:
            detector.frame = frame
        result = pipeline.process([ViewFrame(blank(v), round(frame.stamp * NS)) for v in views])
    return result


@pytest.fixture(scope="module")
def rig_sequence():
    return MultiViewSequence(0, num_views=4, num_hands=1)


@pytest.fixture(scope="module")
def saved_calibration(rig_sequence, tmp_path_factory):
    """A calibration self-estimated over 150 oracle frames, saved to YAML."""
    names = [v.name for v in rig_sequence.views]
    detectors = [OracleViewDetector(i, 2.0, seed=0) for i in range(4)]
    with MultiviewPipeline(names, SYNC, detectors=detectors) as pipeline:
        run_oracle(pipeline, rig_sequence, detectors, 150)
        path = pipeline.save_calibration(tmp_path_factory.mktemp("calib") / "rig.yaml")
        errors = camera_errors(pipeline.camera_estimates(), rig_sequence)
    return path, errors


def test_oracle_rig_self_calibrates_within_targets():
    summary = evaluate_multiview_sequence(1, 150, 4, 1, oracle=True, noise_px=2.0)
    assert summary["calibrated_cameras"] == 4
    assert summary["rot_err_deg"] < 1.0
    assert summary["trans_dir_err_deg"] < 2.0
    assert summary["focal_err_pct"] < 3.0
    assert summary["frames_to_converge"] is not None and summary["frames_to_converge"] <= 100
    assert summary["pa_mpjpe_mm"] < 5.0
    assert summary["rr_mpjpe_mm"] < 10.0
    assert summary["fused_hands"] > 100


def test_saved_calibration_round_trips_and_fuses_from_the_first_frame(rig_sequence, saved_calibration):
    path, errors = saved_calibration
    document = yaml.safe_load(path.read_text())
    assert [c["name"] for c in document["cameras"]] == ["cam0", "cam1", "cam2", "cam3"]
    assert all(c["intrinsics_source"] == "estimated" and c["observations"] > 0 for c in document["cameras"])
    assert np.nanmax(errors["rotation"]) < 1.5
    names = [v.name for v in rig_sequence.views]
    detectors = [OracleViewDetector(i, 2.0, seed=5) for i in range(4)]
    with MultiviewPipeline(names, detectors=detectors) as pipeline:
        pipeline.load_calibration(path)
        frame = next(iter(rig_sequence.frames(1, render=False)))
        for detector in detectors:
            detector.frame = frame
        result = pipeline.process([ViewFrame(blank(v), 0) for v in rig_sequence.views])
        assert result.state in (RigState.CONVERGING, RigState.CONVERGED)
        loaded = camera_errors(result.cameras, rig_sequence)
        np.testing.assert_allclose(loaded["rotation"], errors["rotation"], atol=1e-6)
        (hand,) = result.hands
        assert not hand.monocular and len(hand.views) >= 2
        truth = frame.joints_world[0] @ rig_sequence.views[0].world_to_camera[:3, :3].T
        truth += rig_sequence.views[0].world_to_camera[:3, 3]
        assert metrics.pa_mpjpe_mm(hand.state.joints, truth) < 5.0
        assert metrics.rr_mpjpe_mm(hand.state.joints, truth) < 12.0


def test_calibration_for_other_cameras_or_sizes_is_refused(rig_sequence, saved_calibration, tmp_path):
    path, _ = saved_calibration
    with MultiviewPipeline(["left", "right", "top", "side"], detectors=[ScriptedDetector() for _ in range(4)]) as other:
        other.load_calibration(path)  # checked when the first frame gives the image sizes
        with pytest.raises(ValueError, match="calibrates cameras"):
            other.process([ViewFrame(blank(v), 0) for v in rig_sequence.views])
    names = [v.name for v in rig_sequence.views]
    with MultiviewPipeline(names, detectors=[ScriptedDetector() for _ in range(4)]) as smaller:
        smaller.load_calibration(path)
        with pytest.raises(ValueError, match=r"cam0.*was calibrated at 640x480"):
            smaller.process([ViewFrame(np.zeros((240, 320, 3), np.uint8), 0) for _ in names])
    with (
        MultiviewPipeline(names, detectors=[ScriptedDetector() for _ in range(4)]) as fresh,
        pytest.raises(FileNotFoundError),
    ):
        fresh.load_calibration(tmp_path / "none")


def test_moved_camera_is_detected_and_recalibrated(rig_sequence, saved_calibration):
    path, _ = saved_calibration
    names = [v.name for v in rig_sequence.views]
    detectors = [ScriptedDetector() for _ in range(4)]
    rng = np.random.default_rng(0)
    views = rig_sequence.views
    poses = [v.world_to_camera for v in views]
    # camera 2 is knocked: turned by 8 degrees about its vertical axis
    turn = np.eye(4)
    turn[:3, :3] = np.array([[np.cos(0.14), 0, np.sin(0.14)], [0, 1, 0], [-np.sin(0.14), 0, np.cos(0.14)]])
    poses[2] = turn @ poses[2]
    states, moved_warning = [], False
    with MultiviewPipeline(names, SYNC, detectors=detectors) as pipeline:
        pipeline.load_calibration(path)
        for frame in rig_sequence.frames(260, render=False):
            for detector, view, pose in zip(detectors, views, poses, strict=True):
                detector.detections = detections_from(frame.joints_world, frame.sides, view.camera, pose, rng)
            result = pipeline.process([ViewFrame(blank(v), round(frame.stamp * NS)) for v in views])
            states.append(result.state)
            moved_warning |= any("cam2" in w and "moved" in w for w in result.warnings)
        assert moved_warning
        assert RigState.RECALIBRATING in states[:60]
        cam2 = result.cameras[2]
        assert cam2.T_ref_cam is not None  # linked and adjusted again
        true_ref_cam2 = poses[0] @ np.linalg.inv(poses[2])
        rotation = cam2.T_ref_cam[:3, :3].T @ true_ref_cam2[:3, :3]
        angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        assert angle < 2.0


def test_views_that_drop_out_or_see_nothing_do_not_stop_the_others(rig_sequence, saved_calibration):
    path, _ = saved_calibration
    names = [v.name for v in rig_sequence.views]
    detectors = [OracleViewDetector(i, 2.0, seed=3) for i in range(4)]
    with MultiviewPipeline(names, detectors=detectors) as pipeline:
        pipeline.load_calibration(path)
        for frame in rig_sequence.frames(20, render=False):
            for detector in detectors:
                detector.frame = frame
            views = [ViewFrame(blank(v), round(frame.stamp * NS)) for v in rig_sequence.views]
            if frame.index >= 5:
                views[1] = None  # camera 1 froze / dropped out
            result = pipeline.process(views)
            if frame.index >= 5:
                assert "cam1" not in result.detections
                assert all("cam1" not in hand.views for hand in result.hands)
        assert result.hands and not result.hands[0].monocular
        detectors[3] = ScriptedDetector()  # camera 3 sees no hand from now on
        pipeline.detectors[3] = detectors[3]
        result = run_oracle(pipeline, rig_sequence, detectors[:3], 5, start=20)
        assert result.detections["cam3"] == 0
        assert result.hands and set(result.hands[0].views) <= {"cam0", "cam1", "cam2"}


def test_single_camera_gives_the_monocular_result_with_a_warning():
    sequence = MultiViewSequence(2, num_views=2, num_hands=1)
    view = sequence.views[0]
    detector = OracleViewDetector(0, 1.0, seed=0)
    with MultiviewPipeline([view.name], detectors=[detector]) as pipeline:
        result = run_oracle(pipeline, sequence, [detector], 3, views=sequence.views[:1])
    assert any("single camera" in w for w in result.warnings)
    (hand,) = result.hands
    assert hand.monocular and hand.views == (view.name,)
    last = list(sequence.frames(3, render=False))[-1]
    assert metrics.pa_mpjpe_mm(hand.state.joints, last.hands[0][0].joints_cam) < 10.0


def test_camera_info_keeps_known_intrinsics_and_bad_inputs_are_refused(rig_sequence):
    names = [v.name for v in rig_sequence.views]
    detectors = [OracleViewDetector(i, 2.0, seed=1) for i in range(4)]
    with MultiviewPipeline(names, detectors=detectors) as pipeline:
        with pytest.raises(ValueError, match="expected 4 views"):
            pipeline.process([None])
        with pytest.raises(ValueError, match="at least one view"):
            pipeline.process([None] * 4)
        first = next(iter(rig_sequence.frames(1, render=False)))
        for detector in detectors:
            detector.frame = first
        waiting = pipeline.process([ViewFrame(blank(rig_sequence.views[0]), 0), None, None, None])
        assert any("no image yet from ['cam1', 'cam2', 'cam3']" in w for w in waiting.warnings)
        assert waiting.state is RigState.UNCALIBRATED
        assert [h.views for h in waiting.hands] == [("cam0",)]  # the reference alone: its monocular result
        true_cam1 = rig_sequence.views[1].camera
        wrong = PinholeCamera.from_intrinsics(500, 500, 160, 120, 320, 240)
        with pytest.raises(ValueError, match=r"cam1.*CameraInfo is 320x240 but the image is 640x480"):
            pipeline.process(
                [ViewFrame(blank(v), 0, wrong if k == 1 else None) for k, v in enumerate(rig_sequence.views)]
            )
        for frame in rig_sequence.frames(120, render=False):
            for detector in detectors:
                detector.frame = frame
            views = [
                ViewFrame(blank(v), round(frame.stamp * NS) + 1, true_cam1 if k == 1 else None)
                for k, v in enumerate(rig_sequence.views)
            ]
            result = pipeline.process(views)
        estimates = {c.name: c for c in result.cameras}
        assert estimates["cam1"].focal_known and estimates["cam1"].camera == true_cam1
        assert not estimates["cam2"].focal_known
        assert all(c.T_ref_cam is not None for c in result.cameras)


def test_two_hands_keep_their_sides_when_one_view_swaps_the_labels():
    sequence = MultiViewSequence(1, num_views=4, num_hands=2)
    names = [v.name for v in sequence.views]
    detectors = [OracleViewDetector(i, 2.0, seed=2) for i in range(4)]
    reference = sequence.views[0].world_to_camera
    with MultiviewPipeline(names, SYNC, detectors=detectors) as pipeline:
        run_oracle(pipeline, sequence, detectors, 60)
        scripted = ScriptedDetector()
        pipeline.detectors[2] = scripted
        rng = np.random.default_rng(4)
        for frame in list(sequence.frames(80, render=False))[60:]:
            for detector in detectors:
                detector.frame = frame
            view = sequence.views[2]
            swapped = [HandSide.RIGHT if s is HandSide.LEFT else HandSide.LEFT for s in frame.sides]  # all mistaken
            scripted.detections = detections_from(frame.joints_world, swapped, view.camera, view.world_to_camera, rng)
            result = pipeline.process([ViewFrame(blank(v), round(frame.stamp * NS)) for v in sequence.views])
            assert sorted(h.side.value for h in result.hands) == ["left", "right"]
            for hand in result.hands:
                truth = frame.joints_world[frame.sides.index(hand.side)] @ reference[:3, :3].T + reference[:3, 3]
                assert metrics.pa_mpjpe_mm(hand.state.joints, truth) < 6.0
                if len(scripted.detections) == 2:
                    assert "cam2" in hand.views  # its detections were used, under the right side


def test_reset_calibration_starts_over(rig_sequence, saved_calibration):
    path, _ = saved_calibration
    names = [v.name for v in rig_sequence.views]
    detectors = [OracleViewDetector(i, 2.0, seed=6) for i in range(4)]
    with MultiviewPipeline(names, SYNC, detectors=detectors) as pipeline:
        pipeline.load_calibration(path)
        result = run_oracle(pipeline, rig_sequence, detectors, 2)
        assert all(c.T_ref_cam is not None for c in result.cameras)
        pipeline.reset_calibration()
        estimates = pipeline.camera_estimates()
        assert pipeline.calibrator.state is RigState.UNCALIBRATED
        assert [c.T_ref_cam is not None for c in estimates] == [True, False, False, False]  # the reference only
        assert all(c.quality == 0.0 and not c.converged for c in estimates[1:])
        guess = estimates[1].camera.fx
        result = run_oracle(pipeline, rig_sequence, detectors, 60, start=2)
        assert all(c.T_ref_cam is not None for c in result.cameras)  # self-calibrated again
        assert result.cameras[1].camera.fx != guess


def test_calibration_settings_are_checked():
    with pytest.raises(ValueError, match="default_hfov_deg"):
        CalibrationConfig(default_hfov_deg=200.0)
    with pytest.raises(ValueError, match="min_link_frames"):
        CalibrationConfig(min_link_frames=0)
    with pytest.raises(ValueError, match="huber_px"):
        CalibrationConfig(huber_px=0.0)
    with pytest.raises(ValueError, match="unique"):
        MultiviewPipeline(["a", "a"], detectors=[ScriptedDetector(), ScriptedDetector()])
    with pytest.raises(ValueError, match="one detector per camera"):
        MultiviewPipeline(["a", "b"], detectors=[ScriptedDetector()])


def test_two_cameras_hold_unknown_focal_lengths_and_calibrate_well_with_camera_info():
    guessed = evaluate_multiview_sequence(1, 100, 2, 1, oracle=True, noise_px=2.0)
    # two cameras cannot pin two unknown focal lengths: they stay at the guess, the poses stay sane
    assert guessed["calibrated_cameras"] == 2 and guessed["rot_err_deg"] < 6.0
    with_info = evaluate_multiview_sequence(1, 100, 2, 1, oracle=True, noise_px=2.0, camera_info=True)
    assert with_info["rot_err_deg"] < 1.0 and with_info["trans_dir_err_deg"] < 2.0
    assert with_info["focal_err_pct"] == 0.0 and with_info["pa_mpjpe_mm"] < 5.0


def _line_motion(frame_index: int, start: MultiViewFrame) -> list[np.ndarray]:
    """The start frame's hand translated back and forth along one direction (8 cm either way)."""
    direction = np.array([1.0, 0.3, 0.0]) / np.linalg.norm([1.0, 0.3, 0.0])
    return [start.joints_world[0] + 0.08 * np.sin(frame_index / 10) * direction]


# case: (how the second camera sees the scene, how the hand moves, the hold expected)
DEGENERATE_CASES = {
    "same image on two cameras": ("same", "free", CalibrationHold.SMALL_BASELINE),
    "cameras 1 mm apart": ("1mm", "free", CalibrationHold.SMALL_BASELINE),
    "static hand": ("distinct", "static", CalibrationHold.STATIC_HAND),
    "hand moving along one line": ("distinct", "line", CalibrationHold.COLLINEAR_MOTION),
}


@pytest.mark.parametrize("case", DEGENERATE_CASES)
def test_degenerate_geometry_gives_monocular_hands_with_the_reason_then_calibrates(case):
    """40 frames of degenerate geometry: every frame has its hand, monocular, the rig uncalibrated with the reason and
    no exception; then distinct viewpoints and a freely moving hand: the same pipeline calibrates and fuses."""
    viewpoint, motion, expected = DEGENERATE_CASES[case]
    sequence = MultiViewSequence(1, num_views=2, num_hands=1)
    frames = list(sequence.frames(140, render=False))
    camera = sequence.views[0].camera  # both cameras get it as CameraInfo (two-camera rigs need it, see above)
    w2c0, w2c1 = sequence.views[0].world_to_camera, sequence.views[1].world_to_camera
    beside = w2c0.copy()
    beside[0, 3] -= 0.001
    second = {"same": w2c0, "1mm": beside, "distinct": w2c1}[viewpoint]
    rng = np.random.default_rng(0)
    detectors = [ScriptedDetector(), ScriptedDetector()]
    image = np.zeros((camera.height, camera.width, 3), np.uint8)
    with MultiviewPipeline(["cam0", "cam1"], SYNC, detectors=detectors) as pipeline:
        for index, frame in enumerate(frames):
            degenerate = index < 40
            joints = {"free": frame.joints_world, "static": frames[0].joints_world,
                      "line": _line_motion(index, frames[0])}[motion if degenerate else "free"]  # fmt: skip
            detectors[0].detections = detections_from(joints, frame.sides, camera, w2c0, rng, noise_px=1.0)
            if degenerate and viewpoint == "same":
                detectors[1].detections = detectors[0].detections  # one stream wired to two names
            else:
                pose = second if degenerate else w2c1
                detectors[1].detections = detections_from(joints, frame.sides, camera, pose, rng, noise_px=1.0)
            result = pipeline.process([ViewFrame(image, round(frame.stamp * NS), camera)] * 2)
            if degenerate:
                (hand,) = result.hands
                assert hand.monocular and result.state is RigState.UNCALIBRATED
                assert result.calibration_reason in result.warnings[-1]
            if index == 39:
                held = pipeline.calibrator.cameras[1]
                assert held.hold is expected and result.calibration_reason == f"cam1: {held.hold_detail}"
        assert result.state in (RigState.CONVERGING, RigState.CONVERGED) and not result.calibration_reason
        (hand,) = result.hands
        assert not hand.monocular and hand.views == ("cam0", "cam1")
        errors = camera_errors(result.cameras, sequence)
        assert errors["rotation"][1] < 1.5 and errors["direction"][1] < 3.0
