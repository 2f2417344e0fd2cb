"""`hand-scene eval gaussian`: the novel views see the same hand, and the report has every part the issue asks for."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.eval.gaussian_fit import evaluate_gaussian_fit, params_in_frame
from hand_scene_perception.gaussian.per_video import crop_view, posed_vertices

MODEL = create_hand_model("open")


def test_hand_parameters_moved_into_another_frame_pose_the_moved_mesh():
    pose = np.zeros((16, 3))
    pose[0] = [2.5, 0.3, -0.4]
    pose[[2, 5]] = [0.0, 0.0, 0.7]
    camera = PinholeCamera.from_intrinsics(400.0, 400.0, 160.0, 120.0, 320, 240)
    image = np.zeros((240, 320, 3), np.uint8)
    view = crop_view(0, image, camera, HandSide.LEFT, pose, np.zeros(10), np.array([0.02, -0.01, 0.45]), MODEL)
    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_euler("xyz", [0.2, 0.9, -0.3]).as_matrix()
    transform[:3, 3] = [0.1, 0.05, -0.2]
    correction = (torch.full((16, 3), 0.01, dtype=torch.float64), torch.tensor([0.003, 0.0, -0.002]).double())
    moved_pose, moved_translation = params_in_frame(MODEL, view, correction, transform)
    expected = posed_vertices(MODEL, view, *correction).double().numpy() @ transform[:3, :3].T + transform[:3, 3]
    moved = MODEL.forward(moved_pose.astype(np.float32), side=HandSide.LEFT,
                          transl=moved_translation.astype(np.float32)).vertices[0]  # fmt: skip
    np.testing.assert_allclose(moved, expected, atol=2e-5)


def test_the_report_scores_held_out_and_novel_views_and_joints():
    report = evaluate_gaussian_fit(num_frames=12, steps=2, held_out_every=4, refine_steps=1, crop_size=32)
    assert report["sequence"]["held_out_views"] >= 2 and report["fit"]["steps"] == 2
    for part in ("held_out", "novel_view"):
        for scores in report[part].values():
            assert 5.0 < scores["psnr_db"] < 60.0 and -1.0 < scores["ssim"] <= 1.0
    assert report["novel_view"]["tracked_pose"]["views"] >= 1
    joints = report["joints"]
    assert set(joints) == {"training_tracked", "training_after_image_supervision", "held_out_tracked",
                           "held_out_refined"}  # fmt: skip
    assert 0 < joints["training_tracked"]["mpjpe_mm"] < 200


def test_the_oracle_poses_are_the_generated_hands_in_the_camera_frame():
    from hand_scene_perception.core.transforms import inverse_matrices
    from hand_scene_perception.eval.gaussian_fit import true_params_cam
    from hand_scene_perception.synth.sequence import generate_sequence

    (frame,) = generate_sequence(2, 1, num_hands=1)
    truth = frame.hands[0]
    pose, translation = true_params_cam(MODEL, truth, frame.T_world_camera)
    vertices = MODEL.forward(pose.astype(np.float32), truth.shape.astype(np.float32), side=truth.side,
                             transl=translation.astype(np.float32)).vertices[0]  # fmt: skip
    camera_from_world = inverse_matrices(frame.T_world_camera)
    expected = truth.vertices_world @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
    np.testing.assert_allclose(vertices, expected, atol=1e-4)
