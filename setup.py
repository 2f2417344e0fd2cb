"""ament_python package hand_scene_perception (also pip-installable into a venv, see README)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hand_scene_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/rviz", glob("config/rviz/*.rviz")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26,<3",
        "scipy>=1.11",
        "torch>=2.4",
        "smplx>=0.1.28",
        "pytorch-msssim>=1.0",
        "numba>=0.60",
        "pillow>=10",
        "pyyaml>=6",
    ],
    zip_safe=True,
    maintainer="hand_scene_perception maintainers",
    maintainer_email="maintainers@hand-scene-perception.dev",
    description="ROS 2 hand-scene perception: ego 4D reconstruction, multi-camera hand fusion, Gaussian hands.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hand-scene = hand_scene_perception.cli:main",
            "ego_reconstruction = hand_scene_perception.ros.ego.node:main",
            "multiview_fusion = hand_scene_perception.ros.multiview.node:main",
            "gaussian_hands = hand_scene_perception.ros.gaussian.node:main",
        ],
    },
)
