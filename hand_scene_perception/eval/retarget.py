"""Consumer check for ``hand-scene eval real``: robot joint commands from each estimate's hands against those from
the ground truth's hands, through dex-retargeting (https://github.com/dexsuite/dex-retargeting), the teleoperation
retargeter our users feed hand joints to.

For every robot (the dex-retargeting names: ``allegro``, ``shadow``, ``inspire``, ``leap``, ...) and every
ground-truth hand, a fresh retargeter per source (``pipeline``, ``per_image``, ``raw_detector`` and the ground truth
itself) is driven frame by frame in time order, as a teleop loop drives it: each solve starts from the previous
command, and the shipped teleop config's low-pass filter smooths the output. A source is fed only the frames where
it has the hand (a teleop loop holds its last command while the hand is lost). Reported per robot and estimate, on
the hand-frames where the ground truth and every estimate have the hand: the mean absolute difference of the
commanded joints from the ground truth's commands, in degrees (all of dex-retargeting's hands have revolute joints
only), with the median and 90th percentile of the per-frame means.

The retargeters use the "vector" type with dex-retargeting's shipped teleop configs
(``configs/teleop/<robot>_hand_<side>.yml``); their URDFs come from dex-urdf (https://github.com/dexsuite/dex-urdf),
folder ``robots/`` (or ``robots/hands``). Hand joints go in in dex-retargeting's MANO-like wrist frame
(:func:`mano_wrist_frame`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..core.hand_model import HandSide
from ..datasets.ground_truth import RealSequence
from .real import METHODS, EstimatedHand, matched_hands

DEFAULT_ROBOTS = ("allegro", "shadow")
_GROUND_TRUTH = "ground_truth"
_MISSING = ("retargeting needs the dex-retargeting package (pip install dex-retargeting==0.4.6, pinned in "
            "requirements/python.txt) and the dex-urdf robot URDFs (https://github.com/dexsuite/dex-urdf, its robots/ "
            "folder) passed as --retarget-urdf-dir")

# MediaPipe-order joints used for the wrist frame.
_WRIST, _INDEX_MCP, _MIDDLE_MCP = 0, 5, 9


class RetargetingUnavailable(ImportError, ValueError):
    """dex-retargeting is not installed (a ValueError too, so that the CLI reports it as a one-line error)."""


class Retargeter(Protocol):
    """One robot hand's retargeter, stateful over a sequence (warm start, filter)."""

    joint_names: list[str]

    def retarget(self, joints_wrist: np.ndarray) -> np.ndarray:
        """Commanded joint positions (radians, ``joint_names`` order) for (21, 3) joints in the wrist frame."""


RetargeterFactory = Callable[[str, HandSide], Retargeter]


def mano_wrist_frame(joints: np.ndarray, side: HandSide | str) -> np.ndarray:
    """(21, 3) MediaPipe-order joints (any right-handed frame, metres) in dex-retargeting's wrist frame.

    Origin at the wrist; +Z from the wrist towards the middle finger's MCP, in the palm plane (wrist, index MCP,
    middle MCP); for a right hand +Y points from the middle MCP towards the index MCP side, for a left hand towards
    the little-finger side; +X = Y x Z completes the right-handed frame (the palm normal). This is the
    orientation the shipped teleop configs expect from their MediaPipe examples; a left hand mirrored into a right
    one comes out with Y negated.
    """
    joints = np.asarray(joints, dtype=np.float64)
    side = HandSide.parse(side)
    local = joints - joints[_WRIST]
    index, middle = local[_INDEX_MCP], local[_MIDDLE_MCP]
    length = np.linalg.norm(middle)
    normal = np.cross(index, middle)
    if length < 1e-9 or np.linalg.norm(normal) < 1e-12 * max(length, 1.0) ** 2:
        raise ValueError("the wrist and the index and middle MCPs are degenerate: no palm plane")
    normal /= np.linalg.norm(normal)
    forward = middle - np.dot(middle, normal) * normal
    forward /= np.linalg.norm(forward)
    radial = np.cross(normal, forward)
    if np.dot(radial, index - middle) < 0:  # orient the normal so that radial points to the index side
        normal, radial = -normal, -radial
    if side is HandSide.LEFT:
        radial = -radial
    axes = np.stack([np.cross(radial, forward), radial, forward], axis=1)  # columns: X, Y, Z in input coords
    return local @ axes


class DexRetargeter:
    """A dex-retargeting :class:`SeqRetargeting` (vector type) behind :class:`Retargeter`. Its console messages go
    to stderr so that ``--json`` output stays one JSON object."""

    def __init__(self, config) -> None:
        with contextlib.redirect_stdout(sys.stderr):
            self._retargeting = config.build()
        optimizer = self._retargeting.optimizer
        if optimizer.retargeting_type != "VECTOR":
            raise ValueError(f"the consumer check uses vector retargeting, got {optimizer.retargeting_type}")
        indices = np.asarray(optimizer.target_link_human_indices)
        self._origin, self._task = indices[0], indices[1]
        self._commanded = np.asarray(optimizer.idx_pin2target)
        self.joint_names = list(optimizer.target_joint_names)

    def retarget(self, joints_wrist: np.ndarray) -> np.ndarray:
        vectors = joints_wrist[self._task] - joints_wrist[self._origin]
        with contextlib.redirect_stdout(sys.stderr):
            qpos = self._retargeting.retarget(vectors)
        return np.asarray(qpos, dtype=np.float64)[self._commanded]


def _import_dex():
    try:
        from dex_retargeting import constants
        from dex_retargeting.retargeting_config import RetargetingConfig
    except ImportError as error:
        raise RetargetingUnavailable(f"{_MISSING} ({error})") from error
    return constants, RetargetingConfig


def urdf_hands_dir(urdf_dir: str | Path) -> Path:
    """The folder the shipped configs' ``<robot>_hand/<file>.urdf`` paths are relative to: dex-urdf's
    ``robots/hands`` (given as ``robots/`` or ``robots/hands``)."""
    path = Path(urdf_dir)
    if (path / "hands").is_dir():
        path = path / "hands"
    if not path.is_dir():
        raise ValueError(f"--retarget-urdf-dir {urdf_dir} is not a folder; {_MISSING}")
    return path


def dex_factory(urdf_dir: str | Path, robots: Sequence[str] = DEFAULT_ROBOTS,
                low_pass: bool = True) -> RetargeterFactory:
    """Retargeters from dex-retargeting's shipped vector teleop configs. Checks up front (before any frame is
    processed) that the package imports and that every robot's left and right URDF is in ``urdf_dir``.
    ``low_pass=False`` turns the configs' output filter off."""
    constants, config_class = _import_dex()
    hands = urdf_hands_dir(urdf_dir)
    known = {name.name: name for name in constants.ROBOT_NAMES if "gripper" not in constants.ROBOT_NAME_MAP[name]}
    configs: dict[tuple[str, HandSide], Path] = {}
    for robot in robots:
        if robot not in known:
            raise ValueError(f"unknown robot {robot!r} for retargeting; dex-retargeting has {', '.join(known)}")
        for side in HandSide:
            path = constants.get_default_config_path(known[robot], constants.RetargetingType.vector,
                                                     constants.HandType[side.value])
            if path is None or not Path(path).is_file():
                raise ValueError(f"dex-retargeting ships no teleop config for {robot} {side.value} ({path})")
            configs[robot, side] = Path(path)
            urdf = hands / _load_yaml(path)["retargeting"]["urdf_path"]
            if not urdf.is_file():
                raise ValueError(f"{urdf} is missing: --retarget-urdf-dir must be dex-urdf's robots/ folder "
                                 f"(https://github.com/dexsuite/dex-urdf)")

    def build(robot: str, side: HandSide) -> Retargeter:
        config_class.set_default_urdf_dir(str(hands))
        override = None if low_pass else {"low_pass_alpha": -1.0}
        return DexRetargeter(config_class.load_from_file(configs[robot, HandSide.parse(side)], override))

    return build


def _load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as stream:
        return yaml.safe_load(stream)


def retarget_stream(joints_by_frame: dict[int, np.ndarray], side: HandSide, retargeter: Retargeter
                    ) -> dict[int, np.ndarray]:
    """Commands for one hand's joints (camera frame) per frame, in time order through one retargeter. A frame whose
    palm is degenerate is skipped (the loop holds its last command)."""
    commands = {}
    for frame in sorted(joints_by_frame):
        try:
            wrist = mano_wrist_frame(joints_by_frame[frame], side)
        except ValueError:
            continue
        commands[frame] = retargeter.retarget(wrist)
    return commands


def _hand_streams(sequence: RealSequence, found: dict[str, dict[tuple[int, int], EstimatedHand]]
                  ) -> Iterator[tuple[int, dict[str, dict[int, np.ndarray]]]]:
    """Per ground-truth slot: each source's joints by frame (the ground truth where valid, estimates where matched)."""
    for slot in range(len(sequence.sides)):
        valid = np.flatnonzero(sequence.valid[:, slot])
        streams = {_GROUND_TRUTH: {int(frame): sequence.joints_cam[frame, slot] for frame in valid}}
        for name, hands in found.items():
            streams[name] = {frame: hand.joints_cam for (frame, s), hand in hands.items() if s == slot}
        yield slot, streams


def _summary(per_frame_deg: list[np.ndarray]) -> dict:
    if not per_frame_deg:
        return {"mean_abs_deg": None, "median_frame_deg": None, "p90_frame_deg": None}
    values = np.stack(per_frame_deg)
    means = values.mean(axis=1)
    return {"mean_abs_deg": float(values.mean()), "median_frame_deg": float(np.median(means)),
            "p90_frame_deg": float(np.percentile(means, 90))}


def evaluate_retargeting(sequence: RealSequence, estimates: dict[str, list[list[EstimatedHand]]],
                         factory: RetargeterFactory, robots: Sequence[str] = DEFAULT_ROBOTS) -> dict:
    """Each estimate's robot commands against the ground truth's, per robot (see the module notes)."""
    found, _ = matched_hands(sequence, estimates)
    methods = [name for name in METHODS if name in found] + [name for name in found if name not in METHODS]
    report: dict = {"units": "deg", "retargeting": "dex-retargeting vector (teleop configs)", "robots": {}}
    hands_compared = 0
    for robot in robots:
        diffs: dict[str, list[np.ndarray]] = {name: [] for name in methods}
        joint_names: dict[str, list[str]] = {}
        hands_compared = 0
        for slot, streams in _hand_streams(sequence, found):
            side = HandSide.parse(sequence.sides[slot])
            commands = {}
            for name, joints in streams.items():
                retargeter = factory(robot, side)
                joint_names.setdefault(side.value, list(retargeter.joint_names))
                commands[name] = retarget_stream(joints, side, retargeter)
            common = sorted(set.intersection(*(set(c) for c in commands.values())))
            hands_compared += len(common)
            truth = commands[_GROUND_TRUTH]
            for name in methods:
                diffs[name].extend(np.degrees(np.abs(commands[name][f] - truth[f])) for f in common)
        entry: dict = {"joints": len(next(iter(joint_names.values()), [])), "hands": hands_compared}
        entry.update({name: _summary(diffs[name]) for name in methods})
        scored = {name: entry[name]["mean_abs_deg"] for name in methods if entry[name]["mean_abs_deg"] is not None}
        entry["closest"] = min(scored, key=scored.get) if scored else None
        report["robots"][robot] = entry
    report["hands"] = hands_compared
    return report


def evaluate_real_with_retargeting(sequence: RealSequence, factory: RetargeterFactory,
                                   robots: Sequence[str] = DEFAULT_ROBOTS, with_depth: bool = False,
                                   config=None, detector_factory=None,
                                   progress: Callable[[int], None] | None = None) -> dict:
    """:func:`.real.evaluate_real`'s report plus ``retargeting`` (this module's), from one run of the
    estimates."""
    from ..pipelines.ego import EgoConfig
    from .real import evaluate_estimates, expert_factory, load_frames, run_estimates

    config = config or EgoConfig()
    detectors = detector_factory or expert_factory(config.backend, config.max_hands)
    estimates = run_estimates(load_frames(sequence, with_depth), sequence.fps, detectors, config, progress)
    report = evaluate_estimates(sequence, estimates)
    report["depth"] = bool(with_depth)
    report["retargeting"] = evaluate_retargeting(sequence, estimates, factory, robots)
    return report
