"""The hand-expert seam: the one list of backend names, lazy construction, and the result type's optional fields."""

import subprocess
import sys

import numpy as np
import pytest

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.backends.crop_redetect import CropRedetectDetector
from hand_scene_perception.backends.mediapipe_hands import MediaPipeHandDetector
from hand_scene_perception.backends.registry import BACKEND_NAMES, check_backend, create_hand_expert
from hand_scene_perception.pipelines.ego import EgoConfig
from hand_scene_perception.pipelines.multiview import MultiviewConfig


def test_unknown_backend_is_refused_with_the_choices():
    assert check_backend(" Embedded ") == "embedded"
    with pytest.raises(ValueError, match="choose one of: " + ", ".join(BACKEND_NAMES)):
        check_backend("learned")
    for config in (EgoConfig, MultiviewConfig):
        with pytest.raises(ValueError, match="unknown hand backend 'gpu'"):
            config(backend="gpu")


def test_video_expert_has_the_crop_pass_and_image_expert_not():
    video = create_hand_expert("embedded", max_hands=1)
    image = create_hand_expert("embedded", mode="image")
    plain = create_hand_expert("embedded", redetect=False)
    try:
        assert isinstance(video, CropRedetectDetector) and video.max_hands == 1
        assert isinstance(image, MediaPipeHandDetector) and image.mode == "image"
        assert isinstance(plain, MediaPipeHandDetector) and plain.mode == "video"
        assert video.metric_size_sigma == image.metric_size_sigma == 0.3
    finally:
        for expert in (video, image, plain):
            expert.close()


def test_size_sigma_comes_from_the_expert_unless_configured():
    class Exact:
        metric_size_sigma = 0.0

    assert EgoConfig().size_sigma(Exact()) == 0.0
    assert EgoConfig(detector_size_sigma=0.2).size_sigma(Exact()) == 0.2


def test_listing_backends_imports_no_backend_runtime():
    code = ("import sys; import hand_scene_perception.backends.registry, hand_scene_perception.ros.launch.plan; "
            "print(sorted(m for m in ('torch', 'mediapipe', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_optional_learned_outputs_are_checked():
    landmarks, joints = np.zeros((21, 2)), np.zeros((21, 3))
    hand = HandDetection("right", 0.9, landmarks, joints, model_pose=np.zeros((16, 3)), model_shape=np.zeros(10),
                         vertices_m=np.zeros((778, 3)), crop_features=np.ones((4, 8)))
    assert hand.vertices_m.shape == (778, 3) and hand.crop_features.shape == (4, 8)
    assert HandDetection("left", 1.0, landmarks, joints).model_pose is None
    with pytest.raises(ValueError, match=r"model_pose must have shape \(16, 3\)"):
        HandDetection("right", 0.9, landmarks, joints, model_pose=np.zeros(48))
    with pytest.raises(ValueError, match=r"vertices_m must have shape \(N, 3\)"):
        HandDetection("right", 0.9, landmarks, joints, vertices_m=np.zeros((778, 2)))
