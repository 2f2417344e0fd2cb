"""Ego pipeline (the Hand3R task, embedded tier): one moving camera in, hands and scene in a metric world out.

Per frame, in this order:
1. Odometry and hand detection run concurrently (OpenCV and MediaPipe both release the GIL, and
   this machine has two cores; MediaPipe keeps to one): odometry masks out the previous frame's
   hands, dilated, since it cannot wait for this frame's detections. With depth: RGB-D odometry,
   then the frame's points are put into the world at the tracked pose (the mask-free half of map
   fusion); without: monocular odometry whose metric scale comes from the hands placed in step 2
   (added to it once they are placed).
2. Each detected hand is placed metrically in the camera frame (intrinsics, depth when present)
   and the hand model is fitted to it (pipelines/hand_estimate.py, warm-started from the same hand's previous fit).
3. The fits are moved into the world frame, associated to tracks (stable ids, voted sides) and
   temporally filtered; filtering acts on the model parameters (by default the wrist position only: the
   fitter's temporal prior steadies the angles, see EgoConfig.tracker; the shape is the fitter's running
   average) and the mesh is posed again from the filtered parameters, so joints, vertices and the published
   parameters always agree.
4. With depth, the frame's non-hand points are fused into the coloured voxel map (on the worker,
   during steps 2-3), and contacts between the hand meshes and the map are found.

:meth:`EgoPipeline.process` returns a frame's result before it takes the next frame.
:meth:`EgoPipeline.process_stream` (:meth:`EgoPipeline.process_arrivals` for live frames) gives the same
results and hands frame t+1 to the detector while steps 2-4 of frame t run, so the detector's core never waits on the
rest of the pipeline: the choice for throughput (bags, files), measured by ``hand-scene bench ego``.

World frame: the first camera pose of a session (or ``EgoConfig.initial_pose``); a time jump
backwards (bag loop) or :meth:`EgoPipeline.reset` starts a new session. ``EgoConfig.camera_pose_source``
replaces odometry: ``tf``, each frame brings its pose (``EgoFrame.T_world_camera``, in whatever frame the
caller chose); ``static``, the camera stays at the initial pose.
"""

from .config import EgoConfig
from .masks import hand_pixel_mask
from .pipeline import EgoPipeline, hand_estimator
from .results import EgoFrame, EgoHand, EgoResult

__all__ = ["EgoConfig", "EgoFrame", "EgoHand", "EgoPipeline", "EgoResult", "hand_estimator", "hand_pixel_mask"]
