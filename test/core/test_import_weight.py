"""Geometry, tracking and message code must not pull in torch (ARCHITECTURE.md, Layers: core torch-free outside the
hand models)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "hand_scene_perception.core.hand_model",
        "hand_scene_perception.core.hand_state",
        "hand_scene_perception.core.tracking",
        "hand_scene_perception.core.hand_model.wrist_frame",
        "hand_scene_perception.core.metrics",
        "hand_scene_perception.core.placement",
        "hand_scene_perception.core.rig_calibration",
        "hand_scene_perception.ros.conversions",
    ],
)
def test_module_imports_without_torch(module, subprocess_env):
    probe = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", probe], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"{module} imports torch{result.stderr[-2000:]}"
