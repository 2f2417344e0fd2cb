"""``hand-scene eval real``: the ego pipeline against real 3D ground truth, next to its own detector, in one run.

Three estimates of the same frames (``datasets/ground_truth.py`` layout):

- ``pipeline``: :class:`EgoPipeline` over the frames in order (what ``hand-scene run`` and the node do);
- ``per_image``: each frame alone, the detector in image mode and the same per-frame estimate
  (:class:`HandEstimator`, what ``hand-scene detect`` does);
- ``raw_detector``: the detector's own metric landmarks in video mode, placed by a least-squares translation
  against its 2D landmarks (no model, no prior): the baseline the pipeline must not lose to. The detections are
  the very ones the pipeline received (recorded on the way in), so the two differ only by what the pipeline adds.

Each estimate's hands are matched to the ground-truth hands by their 2D landmarks against the projected joints
(Hungarian; a hand farther than half the ground-truth hand's image size is no match). Reported per estimate:
detection rate, unmatched detections, C-/RR-/PA-MPJPE, median root error, AUC of PCK 0-50 mm (RR and PA
aligned), Acc Err (triplets of consecutive frames), and, on the frames every estimate found (``same_frames``),
the same errors side by side. Two checks that need no ground truth, also for videos without labels:
``run_vs_detect_mm`` (pipeline vs per-image joints, same frames) and ``bone_direction_deg`` (mean angle between
the pipeline's bones and the detector's metric bones after aligning the palms: how far the fit bends the
detector's articulation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..backends.base import HandDetection, HandExpert
from ..backends.registry import create_hand_expert
from ..core.alignment import umeyama
from ..core.camera import PinholeCamera
from ..core.fitting import PALM_JOINTS
from ..core.hand_model import MEDIAPIPE_PARENTS
from ..core.metrics import M_TO_MM, auc_pck, procrustes_align
from ..core.placement import solve_translation
from ..datasets.ground_truth import RealSequence
from ..pipelines.ego import EgoConfig, EgoFrame, EgoPipeline, hand_estimator
from ..pipelines.hand_estimate import HandEstimator

METHODS = ("pipeline", "per_image", "raw_detector")
_BONES = np.array([(p, c) for c, p in enumerate(MEDIAPIPE_PARENTS) if p >= 0])
_MATCH_FRACTION = 0.5


@dataclass(frozen=True)
class EstimatedHand:
    """One hand an estimate produced in one frame: its 2D landmarks, 3D joints (camera frame) and the
    detector's metric landmarks it came from (for the bone-direction check)."""

    landmarks_px: np.ndarray
    joints_cam: np.ndarray
    detector_joints: np.ndarray | None = None


@dataclass
class _Recorder:
    """Wraps the pipeline's detector and keeps what it returned per stamp (for the raw baseline)."""

    detector: HandExpert
    seen: dict[int, list[HandDetection]] = field(default_factory=dict)

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        detections = self.detector.detect(image_rgb, timestamp_ns)
        self.seen[int(timestamp_ns or 0)] = detections
        return detections

    @property
    def metric_size_sigma(self) -> float:
        """The wrapped detector's metric-size uncertainty: the pipeline must trust it exactly as per-image does."""
        return float(self.detector.metric_size_sigma)

    def close(self) -> None:
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()


def camera_of(K: np.ndarray, width: int, height: int) -> PinholeCamera:
    """The pinhole camera of a 3x3 K (no distortion: the layouts store undistorted intrinsics)."""
    return PinholeCamera.from_intrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
                                         width, height)


def raw_detector_hand(detection: HandDetection, camera: PinholeCamera) -> EstimatedHand:
    """The detector's metric landmarks as they are, translated to fit its 2D landmarks (least squares)."""
    xy = camera.undistort_points(detection.landmarks_px)
    translation = solve_translation(xy, detection.world_landmarks_m)
    return EstimatedHand(detection.landmarks_px, detection.world_landmarks_m + translation,
                         detection.world_landmarks_m)


def run_estimates(
    frames: Iterator[Frame],
    fps: float,
    detector_factory: Callable[[str], HandExpert],
    config: EgoConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[list[EstimatedHand]]]:
    """Every estimate's hands per frame, for (image, camera, depth or None) frames in time order."""
    config = config or EgoConfig()
    fps = fps if fps > 0 else 30.0
    recorder = _Recorder(detector_factory("video"))
    single = detector_factory("image")
    out: dict[str, list[list[EstimatedHand]]] = {name: [] for name in METHODS}
    try:
        with EgoPipeline(config, detector=recorder) as pipeline:
            estimator = hand_estimator(config, single, pipeline.model)  # the same hand model, built once
            for index, (image, camera, depth) in enumerate(frames):
                stamp = round(index * 1e9 / fps)
                result = pipeline.process(EgoFrame(image, camera, stamp, depth))
                out["pipeline"].append([EstimatedHand(h.camera.landmarks_px, h.camera.joints) for h in result.hands])
                out["raw_detector"].append(_placed(recorder.seen.pop(stamp, []), camera, raw_detector_hand))
                out["per_image"].append(_placed(single.detect(image), camera,
                                                lambda d, cam, depth=depth: _estimated(estimator, d, cam, depth)))
                if progress is not None:
                    progress(index + 1)
    finally:
        close = getattr(single, "close", None)
        if close is not None:
            close()
    return out


def _estimated(estimator: HandEstimator, detection: HandDetection, camera: PinholeCamera,
               depth: np.ndarray | None) -> EstimatedHand:
    fit = estimator.estimate(detection, camera, depth)
    return EstimatedHand(detection.landmarks_px, fit.joints_cam, detection.world_landmarks_m)


def _placed(detections: list[HandDetection], camera: PinholeCamera,
            place: Callable[[HandDetection, PinholeCamera], EstimatedHand]) -> list[EstimatedHand]:
    """Each detection through ``place``; one that cannot be placed (inconsistent landmarks) is dropped."""
    hands = []
    for detection in detections:
        try:
            hands.append(place(detection, camera))
        except ValueError:
            continue
    return hands


def match_hands(hands: list[EstimatedHand], gt_joints: np.ndarray, valid: np.ndarray,
                K: np.ndarray) -> dict[int, int]:
    """Ground-truth slot → index into ``hands`` by 2D landmark distance (Hungarian, gated)."""
    slots = np.flatnonzero(valid)
    if not hands or not len(slots):
        return {}
    projected = gt_joints[slots] @ K.T
    projected = projected[..., :2] / projected[..., 2:]
    cost = np.array([[np.linalg.norm(h.landmarks_px - p, axis=1).mean() for h in hands] for p in projected])
    size = np.linalg.norm(projected.max(axis=1) - projected.min(axis=1), axis=1)
    rows, cols = linear_sum_assignment(cost)
    return {int(slots[r]): int(c) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= _MATCH_FRACTION * size[r]}


def _bone_directions(joints: np.ndarray) -> np.ndarray:
    bones = joints[..., _BONES[:, 1], :] - joints[..., _BONES[:, 0], :]
    return bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)


def bone_direction_deg(joints: np.ndarray, reference: np.ndarray) -> float:
    """Mean angle (degrees) between the bones of two skeletons once their palms are aligned (rotation only)."""
    _, rotation, _ = umeyama(joints[list(PALM_JOINTS)], reference[list(PALM_JOINTS)], with_scale=False)
    aligned = joints @ rotation.T
    cosines = np.sum(_bone_directions(aligned) * _bone_directions(reference), axis=-1)
    return float(np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0))).mean())


def _errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """C/RR/PA-MPJPE, median root error and AUCs of (F, 21, 3) pairs, mm."""
    if not len(pred):
        return {}
    c = np.linalg.norm(pred - gt, axis=-1) * M_TO_MM
    rr = np.linalg.norm((pred - pred[:, :1]) - (gt - gt[:, :1]), axis=-1) * M_TO_MM
    pa = np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1) * M_TO_MM
    return {
        "c_mpjpe_mm": float(c.mean()),
        "rr_mpjpe_mm": float(rr.mean()),
        "pa_mpjpe_mm": float(pa.mean()),
        "root_median_mm": float(np.median(c[:, 0])),
        "auc_rr_0_50": auc_pck(rr[:, 1:], 50.0),
        "auc_pa_0_50": auc_pck(pa, 50.0),
    }


def _acc_err(found: dict[tuple[int, int], np.ndarray], gt: np.ndarray) -> float | None:
    """Mean |a_pred - a_gt| (mm/frame²) over every frame triplet (t-1, t, t+1) where the hand was found."""
    values = []
    for (frame, slot), joints in found.items():
        before, after = found.get((frame - 1, slot)), found.get((frame + 1, slot))
        if before is None or after is None:
            continue
        a_pred = before - 2 * joints + after
        a_gt = gt[frame - 1, slot] - 2 * gt[frame, slot] + gt[frame + 1, slot]
        values.append(np.linalg.norm(a_pred - a_gt, axis=-1).mean() * M_TO_MM)
    return float(np.mean(values)) if values else None


def _row(hands: dict[tuple[int, int], EstimatedHand], keys: list[tuple[int, int]], sequence: RealSequence) -> dict:
    """The errors of ``hands`` at ``keys`` ((frame, slot) pairs), with Acc Err for a video."""
    gt = sequence.joints_cam
    pred = np.array([hands[k].joints_cam for k in keys]).reshape(-1, 21, 3)
    row = _errors(pred, np.array([gt[k] for k in keys]).reshape(-1, 21, 3))
    if sequence.is_video:
        row["acc_err_mm_per_frame2"] = _acc_err({k: hands[k].joints_cam for k in keys}, gt)
    return row


def matched_hands(sequence: RealSequence, estimates: dict[str, list[list[EstimatedHand]]]
                  ) -> tuple[dict[str, dict[tuple[int, int], EstimatedHand]], dict[str, int]]:
    """Per estimate: its hands keyed by (frame, ground-truth slot), and how many of its hands matched none."""
    found: dict[str, dict[tuple[int, int], EstimatedHand]] = {}
    unmatched: dict[str, int] = {}
    for name, per_frame in estimates.items():
        found[name], unmatched[name] = {}, 0
        for frame, hands in enumerate(per_frame):
            matches = match_hands(hands, sequence.joints_cam[frame], sequence.valid[frame], sequence.K[frame])
            unmatched[name] += len(hands) - len(matches)
            for slot, index in matches.items():
                found[name][(frame, slot)] = hands[index]
    return found, unmatched


def evaluate_estimates(sequence: RealSequence, estimates: dict[str, list[list[EstimatedHand]]]) -> dict:
    """The report described in the module notes."""
    gt = sequence.joints_cam
    found, unmatched = matched_hands(sequence, estimates)
    total = int(sequence.valid.sum())
    common = sorted(set.intersection(*(set(keys) for keys in found.values())))
    report: dict = {"frames": len(sequence.frames), "gt_hands": total, "video": sequence.is_video,
                    "same_frames": {"hands": len(common)}}
    for name, hands in found.items():
        report[name] = {"detection_rate": len(hands) / total if total else 0.0,
                        "unmatched_detections": unmatched[name], **_row(hands, sorted(hands), sequence)}
        report["same_frames"][name] = _row(hands, common, sequence)
    report["consistency"] = consistency(estimates)
    report["bone_direction_deg_gt"] = {
        name: float(np.mean([bone_direction_deg(h.joints_cam, gt[k]) for k, h in hands.items()]))
        for name, hands in found.items() if hands
    }
    return report


def consistency(estimates: dict[str, list[list[EstimatedHand]]]) -> dict:
    """Checks without ground truth: pipeline vs per-image joints, and the pipeline's bones vs the detector's."""
    agreement, directions = [], []
    for pipeline_hands, single_hands, raw_hands in zip(estimates["pipeline"], estimates["per_image"],
                                                       estimates["raw_detector"], strict=True):
        for hand in pipeline_hands:
            twin = _nearest(hand, single_hands)
            if twin is not None:
                agreement.append(np.linalg.norm(hand.joints_cam - twin.joints_cam, axis=1).mean() * M_TO_MM)
            source = _nearest(hand, raw_hands)
            if source is not None:
                directions.append(bone_direction_deg(hand.joints_cam, source.detector_joints))
    frames = len(estimates["pipeline"])
    return {
        "run_vs_detect_mm": float(np.mean(agreement)) if agreement else None,
        "run_vs_detect_hands": len(agreement),
        "bone_direction_deg": float(np.mean(directions)) if directions else None,
        "hands_per_frame": {name: sum(map(len, per_frame)) / max(frames, 1) for name, per_frame in estimates.items()},
    }


def _nearest(hand: EstimatedHand, others: list[EstimatedHand], max_px: float = 30.0) -> EstimatedHand | None:
    """The other estimate's hand whose landmarks lie nearest (within ``max_px`` mean): the same hand."""
    if not others:
        return None
    distances = [np.linalg.norm(hand.landmarks_px - other.landmarks_px, axis=1).mean() for other in others]
    best = int(np.argmin(distances))
    return others[best] if distances[best] <= max_px else None


def expert_factory(backend: str, max_hands: int) -> Callable[[str], HandExpert]:
    """The named hand expert in either mode: video mode as the pipeline builds it, image mode for the
    single-image path (backends/registry.py)."""

    def build(mode: str) -> HandExpert:
        return create_hand_expert(backend, max_hands=max_hands, mode=mode)

    return build


Frame = tuple[np.ndarray, PinholeCamera, np.ndarray | None]


def load_frames(sequence: RealSequence, with_depth: bool) -> Iterator[Frame]:
    """The sequence's frames as (RGB, camera, depth metres or None)."""
    from PIL import Image

    for index, path in enumerate(sequence.frames):
        image = np.asarray(Image.open(path).convert("RGB"))
        camera = camera_of(sequence.K[index], image.shape[1], image.shape[0])
        depth = None
        if with_depth and sequence.depth is not None:
            depth = np.asarray(Image.open(sequence.depth[index]), dtype=np.float64) / 1000.0
        yield image, camera, depth


def evaluate_real(sequence: RealSequence, with_depth: bool = False, config: EgoConfig | None = None,
                  detector_factory: Callable[[str], HandExpert] | None = None,
                  progress: Callable[[int], None] | None = None) -> dict:
    """Run the three estimates over a real sequence and compare them with its ground truth."""
    config = config or EgoConfig()
    factory = detector_factory or expert_factory(config.backend, config.max_hands)
    estimates = run_estimates(load_frames(sequence, with_depth), sequence.fps, factory, config, progress)
    report = evaluate_estimates(sequence, estimates)
    report["depth"] = bool(with_depth)
    return report

