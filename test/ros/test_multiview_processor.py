"""The multiview message processor on its own (no DDS): messages of N cameras in, fused hands, calibration,
estimated CameraInfo and TF out; bad views left out; calibration files checked against the rig."""

from __future__ import annotations

import numpy as np
import pytest
from multiview_fixtures import make_rig
from scipy.spatial.transform import Rotation

from hand_scene_msgs.msg import MultiCameraCalibration
from hand_scene_perception.pipelines.multiview import MultiviewConfig
from hand_scene_perception.ros.conversions import (
    InputError,
    hand_state,
    pinhole_camera,
    pose_matrix,
    time_ns,
    transform_matrix,
)
from hand_scene_perception.ros.multiview.processor import (
    START_WAIT_SETS,
    CalibrationFileError,
    MultiviewMessageProcessor,
    RigNotStartedError,
)


@pytest.fixture(scope="module")
def rig():
    """Three cameras, the last one at half resolution (published without CameraInfo in the tests)."""
    return make_rig(num_views=3, count=90, seed=5, render=False, scales=(1, 1, 2))


def _processor(rig, **kwargs) -> MultiviewMessageProcessor:
    return MultiviewMessageProcessor(rig.names, MultiviewConfig(), detectors=rig.detectors(), **kwargs)


def _inputs(rig, frame, with_info=(True, True, False)):
    messages = [rig.messages(frame, view) for view in range(len(rig.names))]
    infos = [info if keep else None for (_, info), keep in zip(messages, with_info, strict=True)]
    return [image for image, _ in messages], infos


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).magnitude()))


def test_truth_calibration_file_fuses_from_the_first_frame(rig, tmp_path):
    path = rig.save_truth_calibration(tmp_path / "truth.yaml")
    with _processor(rig) as processor:
        assert processor.load_calibration(path) is False  # applied with the first frame (sizes unknown before)
        errors = []
        for frame in rig.frames[:5]:
            out = processor.process(*_inputs(rig, frame))
            assert out.view_errors == [] and out.calibration_file_error is None
            (hand,) = out.hands.hands
            assert out.hands.header.frame_id == "cam0_optical_frame" and time_ns(out.hands.header.stamp) == rig.stamp(
                frame
            )
            state = hand_state(hand)
            assert state.image_frame_id == "cam0_optical_frame"
            errors.append(np.linalg.norm(state.joints - rig.joints_ref(frame), axis=1).mean())
        assert max(errors) < 0.015, errors  # triangulated from 3 views with 0.5 px noise: millimetres
        # CameraInfo of the half-size camera without CameraInfo: its size, the file's intrinsics
        estimated = pinhole_camera(out.camera_infos["cam2"])
        assert (estimated.width, estimated.height) == (160, 120)
        assert estimated.fx == pytest.approx(rig.camera(2).fx, rel=1e-6)
        assert out.camera_infos["cam2"].header.frame_id == "cam2_optical_frame"
        tf = {t.child_frame_id: t for t in out.transforms}
        assert set(tf) == {"cam1_optical_frame", "cam2_optical_frame"}
        for view in (1, 2):
            transform = tf[f"cam{view}_optical_frame"]
            assert transform.header.frame_id == "cam0_optical_frame"
            assert np.allclose(transform_matrix(transform), rig.T_ref_cam(view), atol=1e-6)
        calibration = processor.calibration_msg(rig.stamp(frame))
        assert calibration.state == MultiCameraCalibration.STATE_CONVERGED
        assert [c.frame_id for c in calibration.cameras] == rig.frames_ids
        assert all(c.converged and c.camera_info.header.frame_id == c.frame_id for c in calibration.cameras)
        assert np.allclose(pose_matrix(calibration.cameras[1].pose_in_reference), rig.T_ref_cam(1), atol=1e-6)


def test_self_calibration_from_hands_gives_poses_and_focal(rig, tmp_path):
    with _processor(rig) as processor:
        published = []
        for frame in rig.frames:
            out = processor.process(*_inputs(rig, frame))
            if out.calibration is not None:
                published.append(out.calibration)
        assert len(published) >= 2, "the calibration message goes out when the rig changes"
        final = processor.calibration_msg(rig.stamp(rig.frames[-1]))
        assert final.state in (MultiCameraCalibration.STATE_CONVERGING, MultiCameraCalibration.STATE_CONVERGED)
        for view in (1, 2):
            entry = final.cameras[view]
            pose = pose_matrix(entry.pose_in_reference)
            assert _angle_deg(pose, rig.T_ref_cam(view)) < 3.0
            assert entry.observations > 0 and 0.0 < entry.quality <= 1.0
        focal = pinhole_camera(final.cameras[2].camera_info).fx
        assert abs(focal / rig.camera(2).fx - 1.0) < 0.1, "cam2 has no CameraInfo: its focal length is estimated"
        saved = processor.save_calibration(tmp_path / "rig.yaml")
        processor.reset_calibration()
        assert processor.calibration_msg(0).state == MultiCameraCalibration.STATE_UNCALIBRATED
        assert processor.load_calibration(saved) is True
        reloaded = processor.calibration_msg(0)
        assert np.allclose(pose_matrix(reloaded.cameras[1].pose_in_reference),
                           pose_matrix(final.cameras[1].pose_in_reference), atol=1e-6)  # fmt: skip


def test_file_for_other_cameras_is_refused_and_the_rig_calibrates_itself(rig, tmp_path):
    other = rig.save_truth_calibration(tmp_path / "other.yaml", names=["left", "right", "top"])
    with _processor(rig) as processor:
        processor.load_calibration(other)
        out = processor.process(*_inputs(rig, rig.frames[0]))
        assert "refused" in out.calibration_file_error and "left" in out.calibration_file_error
        assert out.result.state == 0 and len(out.hands.hands) == 1  # uncalibrated, monocular hand from cam0
        with pytest.raises(CalibrationFileError, match="calibrates cameras"):
            processor.load_calibration(other)
    with pytest.raises(FileNotFoundError):
        _processor(rig).load_calibration(tmp_path / "missing.yaml")


def test_bad_views_are_left_out_and_the_rest_fuses(rig, tmp_path):
    with _processor(rig) as processor:
        processor.load_calibration(rig.save_truth_calibration(tmp_path / "truth.yaml"))
        processor.process(*_inputs(rig, rig.frames[0]))
        images, infos = _inputs(rig, rig.frames[1])
        images[1].encoding = "yuv422"
        infos[0].k = [0.0] * 9
        with pytest.raises(InputError, match=r"cam0.*camera_info"):
            processor.process(images[:1] + [None, None], infos)  # only a bad view: nothing to fuse
        out = processor.process(images, infos)
        assert len(out.view_errors) == 2 and "yuv422" in " ".join(out.view_errors)
        images, infos = _inputs(rig, rig.frames[2], with_info=(True, True, True))
        infos[2].width = 999  # CameraInfo that does not fit its image
        out = processor.process(images, infos)
        assert out.view_errors == ["camera 'cam2' left out: cam2 image is 160x120 but camera_info says 999x120"]
        assert len(out.hands.hands) == 1  # cam0 and cam1 still triangulate


def test_rig_waits_for_every_camera_then_starts_without_a_silent_one_and_checks_names(rig):
    with _processor(rig) as processor:
        images, infos = _inputs(rig, rig.frames[0])
        for _ in range(START_WAIT_SETS):
            with pytest.raises(RigNotStartedError, match="cam2"):
                processor.process(images[:2] + [None], infos)
        assert not processor.started and processor.calibration_msg(0) is None
        out = processor.process(images[:2] + [None], infos)  # cam2 still silent: the others start the rig
        assert processor.started and "cam2" not in out.result.detections
        assert any("no image yet from ['cam2']" in w for w in out.warnings)
        images, infos = _inputs(rig, rig.frames[1])
        out = processor.process(images, infos)  # cam2 joins with its first image
        assert "cam2" in out.result.detections
    with pytest.raises(ValueError, match="repeated"):
        MultiviewMessageProcessor(["a", "a"], MultiviewConfig(), detectors=rig.detectors()[:2])
    with pytest.raises(ValueError, match="not valid ROS name"):
        MultiviewMessageProcessor(["cam 0"], MultiviewConfig(), detectors=rig.detectors()[:1])


def test_stamps_ahead_of_the_node_clock_warn(rig):
    with _processor(rig) as processor:
        stamp = rig.stamp(rig.frames[0])
        out = processor.process(*_inputs(rig, rig.frames[0]), now_ns=stamp - 5_000_000_000)
        assert any("5.0 s ahead of the node clock" in warning for warning in out.warnings)
        out = processor.process(*_inputs(rig, rig.frames[1]), now_ns=stamp)
        assert not any("ahead of the node clock" in warning for warning in out.warnings)
