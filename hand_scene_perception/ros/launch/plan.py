"""The nodes' launch wiring (ego, multiview), once, in plain Python (no `launch` imports).

`ros2 launch` has no PyPI wheel (ARCHITECTURE.md, Environment), so the wiring lives here and two consumers turn it
into processes:
``launch/<system>.launch.py`` (launch_ros ``Node`` actions, on robots) and ``hand-scene launch <system>`` (the node
in this process, ros/launch/runner.py). Both read the same argument table and the same validated :class:`NodeSpec`
list, so the wiring the tests check is the wiring a robot launches.

Argument values are strings, as launch gives them. The node-parameter arguments default to ``""``, meaning "keep the
params file's value": a user's ``params_file`` is honoured unless an argument says otherwise on the command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...backends.registry import BACKEND_NAMES
from ...core.camera import CAMERA_POSE_SOURCES
from ...core.hand_model.factory import HAND_MODEL_NAMES

PACKAGE = "hand_scene_perception"
EGO_NODE_NAME = "ego_reconstruction"
EGO_EXECUTABLE = "ego_reconstruction"
MULTIVIEW_NODE_NAME = "multiview_fusion"
MULTIVIEW_EXECUTABLE = "multiview_fusion"
GAUSSIAN_NODE_NAME = "gaussian_hands"
GAUSSIAN_EXECUTABLE = "gaussian_hands"
# The multiview node's cameras when neither the params file nor the cameras argument names them (its default).
DEFAULT_CAMERAS = ("cam0", "cam1")
# Stands for each camera's name in the multiview topic arguments.
CAMERA_PLACEHOLDER = "{camera}"
# The camera slots the multiview RViz layout shows (cam0/image ... cam3/image, remapped to the first cameras).
RVIZ_CAMERA_SLOTS = 4
# The node's world frame when the params file does not set one (ros/ego/processor.py EgoMessageProcessor).
DEFAULT_WORLD_FRAME = "map"
SOURCE_ROOT = Path(__file__).resolve().parents[3]

BOOLEANS = ("true", "false")


class LaunchArgumentError(ValueError):
    """A launch argument value the wiring cannot use; the text names the argument and what is accepted."""


@dataclass(frozen=True)
class LaunchArgument:
    """One documented launch argument: name, default (a string, as launch passes values) and description."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what ``launch_ros.actions.Node`` needs, in plain data.

    ``parameters`` holds parameter-file paths followed by at most one dict of overrides (later entries win, as in
    launch_ros); ``remappings`` are (from, to) pairs of topic names; ``arguments`` are plain command-line arguments.
    """

    package: str
    executable: str
    name: str
    namespace: str = ""
    parameters: tuple[str | Mapping[str, Any], ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()

    def parameter_files(self) -> list[str]:
        """The parameter files, in the order they apply."""
        return [entry for entry in self.parameters if isinstance(entry, str)]

    def parameter_overrides(self) -> dict[str, Any]:
        """The override values (applied after the files), merged in order."""
        merged: dict[str, Any] = {}
        for entry in self.parameters:
            if not isinstance(entry, str):
                merged.update(entry)
        return merged


def _share_file(*parts: str) -> Path:
    """A file this package installs under ``share/<package>``: the installed copy when the package is registered in
    the ament index (a colcon or apt install), else the source tree's (a checkout, or a venv that does not set
    AMENT_PREFIX_PATH)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # no ament index in this environment
        return SOURCE_ROOT.joinpath(*parts)
    try:
        return Path(get_package_share_directory(PACKAGE)).joinpath(*parts)
    except (PackageNotFoundError, OSError, ValueError):  # not registered, or AMENT_PREFIX_PATH unset
        return SOURCE_ROOT.joinpath(*parts)


def default_params_file(system: str = "ego") -> Path:
    """The shipped ``config/<system>.yaml`` (installed copy first, see :func:`_share_file`)."""
    return _share_file("config", f"{system}.yaml")


def dds_profile_file() -> Path:
    """The shipped Fast DDS profile for camera-sized messages (``config/fastdds_large_images.xml``)."""
    return _share_file("config", "fastdds_large_images.xml")


def default_rviz_config(system: str = "ego") -> Path:
    """The shipped ``config/rviz/<system>.rviz`` (installed copy first)."""
    return _share_file("config", "rviz", f"{system}.rviz")


# Arguments both systems' launch files declare, with the same meaning.
HAND_MODEL_ARGUMENTS = (
    LaunchArgument(
        "hand_model",
        "",
        "open (the package's hand model, no files) or mano (needs mano_dir). Empty: the params file's value",
        ("", *HAND_MODEL_NAMES),
    ),
    LaunchArgument(
        "mano_dir",
        "",
        "folder holding MANO_RIGHT/MANO_LEFT .pkl or .npz (hand_model mano). Empty: the params file's value",
    ),
)
USE_SIM_TIME_ARGUMENT = LaunchArgument(
    "use_sim_time", "false", "true: follow /clock (rosbag replay with --clock)", BOOLEANS
)

EGO_LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("namespace", "", "namespace of the ego node and its outputs (hands, hand_markers, scene_map, ...)"),
    LaunchArgument(
        "camera_namespace",
        "camera",
        "namespace of the camera driver's topics; relative `*_topic` names resolve under it (absolute ones are kept)",
    ),
    LaunchArgument("image_topic", "image_raw", "colour image (rgb8, bgr8, rgba8, bgra8 or mono8)"),
    LaunchArgument("camera_info_topic", "camera_info", "CameraInfo of the colour image"),
    LaunchArgument(
        "depth_topic",
        "depth/image_raw",
        "depth registered to the colour image (16UC1 millimetres or 32FC1 metres); used when use_depth is true",
    ),
    LaunchArgument(
        "use_depth",
        "",
        "true: pair depth with colour (metric scale, scene map); false: RGB only. Empty: the params file's value",
        ("", *BOOLEANS),
    ),
    LaunchArgument(
        "backend",
        "",
        "embedded (CPU, MediaPipe's bundled models) or learned (GPU networks). Empty: the params file's value",
        ("", *BACKEND_NAMES),
    ),
    *HAND_MODEL_ARGUMENTS,
    LaunchArgument(
        "world_frame",
        "",
        "TF frame of the world-frame outputs: the first camera pose, or with camera_pose_source tf the TF frame the "
        "camera pose is looked up in (e.g. odom, base_link). Empty: the params file's value",
    ),
    LaunchArgument(
        "camera_pose_source",
        "",
        "odometry (visual odometry), tf (the image frame's pose in world_frame from TF at each image stamp) or static "
        "(a fixed camera, no odometry). Empty: the params file's value",
        ("", *CAMERA_POSE_SOURCES),
    ),
    USE_SIM_TIME_ARGUMENT,
    LaunchArgument(
        "params_file",
        "",
        "parameter YAML for the ego node. Empty: the installed config/ego.yaml",
    ),
    LaunchArgument("rviz", "false", "true: also start rviz2 with config/rviz/ego.rviz", BOOLEANS),
)

MULTIVIEW_LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("namespace", "", "namespace of the multiview node and its outputs (hands, calibration, ...)"),
    LaunchArgument(
        "cameras",
        "",
        "comma-separated camera names, the reference camera first (e.g. cam0,cam1,cam2). Empty: the params file's list",
    ),
    LaunchArgument(
        "image_topic",
        f"/{CAMERA_PLACEHOLDER}/image_raw",
        f"each camera's image topic; {CAMERA_PLACEHOLDER} stands for its name; relative names resolve under the "
        "node namespace",
    ),
    LaunchArgument(
        "camera_info_topic",
        f"/{CAMERA_PLACEHOLDER}/camera_info",
        f"each camera's CameraInfo topic ({CAMERA_PLACEHOLDER} as above); a camera without one gets an estimated "
        "focal length",
    ),
    LaunchArgument(
        "reference_frame",
        "",
        "frame of the fused hands and parent of the cameras' TF. Empty: the params file's value (default: the "
        "first camera's optical frame)",
    ),
    LaunchArgument(
        "calibration_file",
        "",
        "rig calibration YAML to start from (written by ~/save_calibration). Empty: the params file's value",
    ),
    *HAND_MODEL_ARGUMENTS,
    USE_SIM_TIME_ARGUMENT,
    LaunchArgument(
        "params_file",
        "",
        "parameter YAML for the multiview node. Empty: the installed config/multiview.yaml",
    ),
    LaunchArgument(
        "rviz",
        "false",
        "true: also start rviz2 with config/rviz/multiview.rviz (the first four cameras' images)",
        BOOLEANS,
    ),
)

GAUSSIAN_LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("namespace", "", "namespace of the gaussian node and its outputs (render, overlay, gaussians/*)"),
    LaunchArgument("hands_topic", "/hands", "the ego node's HandArray (with vertices); relative names resolve under "
                   "the node namespace"),
    LaunchArgument("image_topic", "/camera/image_raw", "image of the camera that filmed the hands (for the overlay)"),
    LaunchArgument("camera_info_topic", "/camera/camera_info", "CameraInfo of that image"),
    LaunchArgument(
        "avatar_files",
        "",
        "comma-separated avatar files from `hand-scene fit gaussian` (e.g. DIR/right.avatar.pt,DIR/left.avatar.pt). "
        "Empty: the params file's value",
    ),
    *HAND_MODEL_ARGUMENTS,
    USE_SIM_TIME_ARGUMENT,
    LaunchArgument("params_file", "", "parameter YAML for the gaussian node. Empty: the installed "
                   "config/gaussian.yaml"),
    LaunchArgument("rviz", "false", "true: also start rviz2 with config/rviz/gaussian.rviz", BOOLEANS),
)

_NAME_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_RELATIVE_NAME = re.compile(rf"{_NAME_TOKEN}(/{_NAME_TOKEN})*")
_FRAME_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


def parse_bool(name: str, value: str) -> bool:
    """``true`` or ``false``, exactly: the choices ego.launch.py declares, so both consumers accept the same."""
    if value.strip() not in BOOLEANS:
        raise LaunchArgumentError(f"{name}:={value!r} is not a boolean; use true or false")
    return value.strip() == "true"


def _check_namespace(name: str, value: str) -> str:
    """A ROS namespace ('' or '/' = root), returned absolute without a trailing slash ('' for the root)."""
    stripped = value.strip().strip("/")
    if stripped and not _RELATIVE_NAME.fullmatch(stripped):
        raise LaunchArgumentError(
            f"{name}:={value!r} is not a valid ROS namespace: use '/'-separated tokens of letters, digits and "
            "underscores, each not starting with a digit (e.g. /camera or /robot1/camera)"
        )
    return "/" + stripped if stripped else ""


def _resolve_topic(name: str, value: str, namespace: str) -> str:
    """A topic argument as an absolute name: absolute values are kept, relative ones resolve under ``namespace``."""
    topic = value.strip()
    absolute = topic.startswith("/")
    if not _RELATIVE_NAME.fullmatch(topic.lstrip("/") if absolute else topic):
        raise LaunchArgumentError(
            f"{name}:={value!r} is not a valid ROS topic name: use '/'-separated tokens of letters, digits and "
            "underscores, each not starting with a digit, with no trailing '/' (e.g. color/image_raw)"
        )
    return topic if absolute else f"{namespace}/{topic}"


def _check_choice(argument: LaunchArgument, value: str) -> str:
    """The value, stripped, when it is exactly one of the argument's choices (as launch checks them)."""
    word = value.strip()
    if argument.choices and word not in argument.choices:
        shown = ", ".join(choice for choice in argument.choices if choice) + (
            " (or empty for the params file's value)" if "" in argument.choices else ""
        )
        raise LaunchArgumentError(f"{argument.name}:={value!r} is not one of: {shown}")
    return word


def _section_applies(key: str, fully_qualified_name: str) -> bool:
    """Whether a parameter file's node key addresses the node as rcl matches it: a missing leading '/' is implied,
    ``*`` stands for one name token and ``**`` for any number of them."""
    pattern = ""
    for token in str(key).strip("/").split("/"):
        pattern += {"**": r"(/[^/]+)*", "*": r"/[^/]+"}.get(token, "/" + re.escape(token))
    return re.fullmatch(pattern, fully_qualified_name) is not None


def load_node_parameters(path: Path, fully_qualified_name: str = f"/{EGO_NODE_NAME}") -> dict[str, Any]:
    """The ``ros__parameters`` a ROS parameter file gives the node ``fully_qualified_name`` (every matching section,
    in file order, the later winning); LaunchArgumentError when the file is missing or not a parameter file."""
    if not path.is_file():
        raise LaunchArgumentError(f"params_file {path} does not exist or is not a file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LaunchArgumentError(f"params_file {path} is not readable YAML: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise LaunchArgumentError(f"params_file {path} must map node names to {{ros__parameters: ...}}")
    parameters: dict[str, Any] = {}
    for key, section in document.items():
        if _section_applies(key, fully_qualified_name) and isinstance(section, dict):
            parameters.update(section.get("ros__parameters") or {})
    return parameters


def resolve_arguments(
    values: Mapping[str, str] | None = None,
    table: Sequence[LaunchArgument] = EGO_LAUNCH_ARGUMENTS,
    system: str = "ego",
) -> dict[str, str]:
    """Every launch argument's value in ``table``: the given ones over the defaults; unknown names are an error."""
    given = dict(values or {})
    names = [argument.name for argument in table]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise LaunchArgumentError(
            f"unknown launch argument(s) {', '.join(unknown)}; the {system} launch takes: {', '.join(names)}"
        )
    resolved = {argument.name: argument.default for argument in table}
    for name, value in given.items():
        if not isinstance(value, str):
            raise LaunchArgumentError(f"{name} must be given as a string (launch passes text), got {type(value)}")
        resolved[name] = value
    return resolved


def ego_launch_plan(values: Mapping[str, str] | None = None) -> list[NodeSpec]:
    """The nodes to start for the given launch-argument values: the ego node, and rviz2 when ``rviz`` is true.

    Every value is checked first; a bad one raises LaunchArgumentError naming the argument and the accepted values.
    """
    arguments = resolve_arguments(values)
    table = {argument.name: argument for argument in EGO_LAUNCH_ARGUMENTS}

    node_namespace = _check_namespace("namespace", arguments["namespace"])
    camera_namespace = _check_namespace("camera_namespace", arguments["camera_namespace"])
    image_topic = _resolve_topic("image_topic", arguments["image_topic"], camera_namespace)
    camera_info_topic = _resolve_topic("camera_info_topic", arguments["camera_info_topic"], camera_namespace)
    depth_topic = _resolve_topic("depth_topic", arguments["depth_topic"], camera_namespace)
    use_sim_time = parse_bool("use_sim_time", arguments["use_sim_time"])
    rviz = parse_bool("rviz", arguments["rviz"])

    overrides: dict[str, Any] = {"use_sim_time": use_sim_time}
    use_depth_word = _check_choice(table["use_depth"], arguments["use_depth"])
    if use_depth_word:
        overrides["use_depth"] = parse_bool("use_depth", use_depth_word)
    backend = _check_choice(table["backend"], arguments["backend"])
    if backend:
        overrides["backend"] = backend
    overrides.update(_model_overrides(table, arguments))
    world_frame = _frame_argument("world_frame", arguments["world_frame"], "world or map")
    if world_frame:
        overrides["world_frame"] = world_frame
    pose_source = _check_choice(table["camera_pose_source"], arguments["camera_pose_source"])
    if pose_source:
        overrides["camera_pose_source"] = pose_source

    params_file = _params_file(arguments, "ego")
    effective = _effective_parameters(params_file, f"{node_namespace}/{EGO_NODE_NAME}", overrides)

    remappings = [("image", image_topic), ("camera_info", camera_info_topic)]
    if effective.get("use_depth", True) is not False:
        remappings.append(("depth", depth_topic))
    plan = [
        NodeSpec(
            package=PACKAGE,
            executable=EGO_EXECUTABLE,
            name=EGO_NODE_NAME,
            namespace=node_namespace,
            parameters=(str(params_file), overrides),
            remappings=tuple(remappings),
        )
    ]
    if rviz:
        world = str(effective.get("world_frame") or DEFAULT_WORLD_FRAME)
        plan.append(rviz_node_spec(world, use_sim_time, node_namespace, (("image", image_topic),), "ego"))
    return plan


def _checked_common(values: Mapping[str, str] | None, table: Sequence[LaunchArgument],
                    system: str) -> tuple[dict[str, str], str, bool, bool, dict[str, Any]]:  # fmt: skip
    """The arguments every system but ego shares, checked: (all values, node namespace, use_sim_time, rviz, the
    overrides so far: use_sim_time and the hand model's)."""
    arguments = resolve_arguments(values, table, system)
    by_name = {argument.name: argument for argument in table}
    use_sim_time = parse_bool("use_sim_time", arguments["use_sim_time"])
    overrides: dict[str, Any] = {"use_sim_time": use_sim_time, **_model_overrides(by_name, arguments)}
    return (arguments, _check_namespace("namespace", arguments["namespace"]), use_sim_time,
            parse_bool("rviz", arguments["rviz"]), overrides)


def _model_overrides(table: Mapping[str, LaunchArgument], arguments: Mapping[str, str]) -> dict[str, Any]:
    """The hand_model and mano_dir overrides the arguments give (mano_dir must be a folder; kept absolute)."""
    overrides: dict[str, Any] = {}
    hand_model = _check_choice(table["hand_model"], arguments["hand_model"])
    if hand_model:
        overrides["hand_model"] = hand_model
    mano_dir = arguments["mano_dir"].strip()
    if mano_dir:
        folder = Path(mano_dir).expanduser()
        if not folder.is_dir():
            raise LaunchArgumentError(f"mano_dir:={mano_dir!r} is not a folder (it must hold MANO_RIGHT/LEFT files)")
        overrides["mano_dir"] = str(folder.resolve())
    return overrides


def _frame_argument(name: str, value: str, example: str) -> str:
    """A TF frame id argument, stripped ('' when empty); LaunchArgumentError for anything else."""
    frame = value.strip()
    if frame and not _FRAME_ID.fullmatch(frame):
        raise LaunchArgumentError(
            f"{name}:={value!r} is not a TF frame id: letters, digits, '_', '.', '-', '/', not starting with '/' "
            f"(e.g. {example})"
        )
    return frame


def _params_file(arguments: Mapping[str, str], system: str) -> Path:
    """The params_file argument as an absolute path, or the shipped config/<system>.yaml."""
    given = Path(arguments["params_file"]).expanduser() if arguments["params_file"].strip() else None
    return (given or default_params_file(system)).resolve()


def _effective_parameters(params_file: Path, fully_qualified_name: str, overrides: Mapping[str, Any]) -> dict:
    """What the node will run with (the file's values under the overrides); hand_model mano needs a mano_dir."""
    effective = {**load_node_parameters(params_file, fully_qualified_name), **overrides}
    if str(effective.get("hand_model", "open")) == "mano" and not str(effective.get("mano_dir") or ""):
        raise LaunchArgumentError(
            "hand_model mano needs mano_dir:=FOLDER holding MANO_RIGHT/MANO_LEFT .pkl or .npz "
            "(license-gated: https://mano.is.tue.mpg.de), or use hand_model:=open"
        )
    return effective


def rviz_node_spec(
    fixed_frame: str,
    use_sim_time: bool,
    node_namespace: str,
    remappings: Sequence[tuple[str, str]],
    system: str,
) -> NodeSpec:
    """rviz2 with the system's shipped layout, its fixed frame set to the node's output frame. The layout names the
    node's outputs relatively, so rviz2 runs in the node's namespace; its image displays follow ``remappings``."""
    return NodeSpec(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=node_namespace,
        parameters=({"use_sim_time": use_sim_time},),
        remappings=tuple(remappings),
        arguments=("-d", str(default_rviz_config(system)), "-f", fixed_frame),
    )


def _camera_names(value: str, from_file: object) -> tuple[list[str], bool]:
    """(camera names, whether the argument gave them): the comma-separated argument, else the params file's list,
    else the node's default; LaunchArgumentError for a name that is no ROS name token or a repeated one."""
    if value.strip():
        names, given = [name.strip() for name in value.split(",")], True
    else:
        names, given = list(from_file or DEFAULT_CAMERAS), False
    bad = [name for name in names if not isinstance(name, str) or not re.fullmatch(_NAME_TOKEN, name)]
    if not names or bad:
        raise LaunchArgumentError(
            f"cameras:={value!r} must be comma-separated names of letters, digits and underscores, each not starting "
            f"with a digit (e.g. cam0,cam1,cam2); bad: {bad}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LaunchArgumentError(f"cameras: every camera needs its own name; repeated: {', '.join(repeated)}")
    return names, given


def _camera_topics(name: str, pattern: str, cameras: Sequence[str], namespace: str) -> dict[str, str]:
    """Each camera's topic from a pattern with {camera}; distinct cameras must get distinct topics."""
    if len(cameras) > 1 and CAMERA_PLACEHOLDER not in pattern:
        raise LaunchArgumentError(
            f"{name}:={pattern!r} gives every camera the same topic; put {CAMERA_PLACEHOLDER} where the camera name "
            f"goes (e.g. /{CAMERA_PLACEHOLDER}/image_raw)"
        )
    return {camera: _resolve_topic(name, pattern.replace(CAMERA_PLACEHOLDER, camera), namespace)
            for camera in cameras}  # fmt: skip


def multiview_launch_plan(values: Mapping[str, str] | None = None) -> list[NodeSpec]:
    """The nodes to start for the given launch-argument values: the multiview node, and rviz2 when ``rviz`` is true.

    Each camera's relative inputs ``<name>/image`` and ``<name>/camera_info`` are remapped to the topic patterns
    with the camera's name filled in. Every value is checked first; a bad one raises LaunchArgumentError.
    """
    arguments, node_namespace, use_sim_time, rviz, overrides = _checked_common(values, MULTIVIEW_LAUNCH_ARGUMENTS,
                                                                               "multiview")  # fmt: skip
    reference = _frame_argument("reference_frame", arguments["reference_frame"], "cam0_optical_frame or rig")
    if reference:
        overrides["reference_frame"] = reference
    calibration = arguments["calibration_file"].strip()
    if calibration:
        path = Path(calibration).expanduser()
        if not path.is_file():
            raise LaunchArgumentError(f"calibration_file:={calibration!r} does not exist or is not a file")
        overrides["calibration_file"] = str(path.resolve())

    params_file = _params_file(arguments, "multiview")
    fully_qualified_name = f"{node_namespace}/{MULTIVIEW_NODE_NAME}"
    cameras, given = _camera_names(arguments["cameras"], load_node_parameters(params_file, fully_qualified_name)
                                   .get("cameras"))  # fmt: skip
    if given:
        overrides["cameras"] = cameras
    effective = _effective_parameters(params_file, fully_qualified_name, overrides)
    images = _camera_topics("image_topic", arguments["image_topic"], cameras, node_namespace)
    infos = _camera_topics("camera_info_topic", arguments["camera_info_topic"], cameras, node_namespace)
    remappings = []
    for camera in cameras:
        remappings += [(f"{camera}/image", images[camera]), (f"{camera}/camera_info", infos[camera])]
    plan = [
        NodeSpec(
            package=PACKAGE,
            executable=MULTIVIEW_EXECUTABLE,
            name=MULTIVIEW_NODE_NAME,
            namespace=node_namespace,
            parameters=(str(params_file), overrides),
            remappings=tuple(remappings),
        )
    ]
    if rviz:
        frames = list(effective.get("camera_frames") or []) or [f"{camera}_optical_frame" for camera in cameras]
        fixed = str(effective.get("reference_frame") or frames[0])
        slots = [(f"cam{slot}/image", images[camera]) for slot, camera in enumerate(cameras[:RVIZ_CAMERA_SLOTS])]
        plan.append(rviz_node_spec(fixed, use_sim_time, node_namespace, slots, "multiview"))
    return plan


def gaussian_launch_plan(values: Mapping[str, str] | None = None) -> list[NodeSpec]:
    """The nodes to start for the given launch-argument values: the gaussian node, and rviz2 when ``rviz`` is true.

    Its inputs ``hands``, ``image`` and ``camera_info`` are remapped to the topic arguments; avatar files given
    must exist. Every value is checked first; a bad one raises LaunchArgumentError."""
    arguments, node_namespace, use_sim_time, rviz, overrides = _checked_common(values, GAUSSIAN_LAUNCH_ARGUMENTS,
                                                                               "gaussian")  # fmt: skip
    if arguments["avatar_files"].strip():
        files = [Path(item.strip()).expanduser() for item in arguments["avatar_files"].split(",") if item.strip()]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise LaunchArgumentError(f"avatar_files: no such file: {', '.join(missing)} (write avatars with "
                                      "`hand-scene fit gaussian VIDEO --out DIR`)")  # fmt: skip
        overrides["avatar_files"] = [str(path.resolve()) for path in files]
    params_file = _params_file(arguments, "gaussian")
    _effective_parameters(params_file, f"{node_namespace}/{GAUSSIAN_NODE_NAME}", overrides)  # (checks mano_dir)
    remappings = tuple((name, _resolve_topic(f"{name}_topic", arguments[f"{name}_topic"], node_namespace))
                       for name in ("hands", "image", "camera_info"))  # fmt: skip
    plan = [NodeSpec(package=PACKAGE, executable=GAUSSIAN_EXECUTABLE, name=GAUSSIAN_NODE_NAME,
                     namespace=node_namespace, parameters=(str(params_file), overrides), remappings=remappings)]
    if rviz:  # the clouds are in the hands' frame: the ego node's default world frame
        plan.append(rviz_node_spec(DEFAULT_WORLD_FRAME, use_sim_time, node_namespace, (), "gaussian"))
    return plan


# system: (argument table, plan function, name of the node the in-process runner hosts)
LAUNCH_SYSTEMS = {
    "ego": (EGO_LAUNCH_ARGUMENTS, ego_launch_plan, EGO_NODE_NAME),
    "multiview": (MULTIVIEW_LAUNCH_ARGUMENTS, multiview_launch_plan, MULTIVIEW_NODE_NAME),
    "gaussian": (GAUSSIAN_LAUNCH_ARGUMENTS, gaussian_launch_plan, GAUSSIAN_NODE_NAME),
}


def describe_plan(plan: list[NodeSpec]) -> str:
    """A readable summary of the plan (what `hand-scene launch ego --print-plan` shows)."""
    lines = []
    for spec in plan:
        lines.append(f"{spec.package}/{spec.executable} as {spec.namespace or ''}/{spec.name}")
        for path in spec.parameter_files():
            lines.append(f"  params file: {path}")
        for name, value in spec.parameter_overrides().items():
            lines.append(f"  param {name} = {value!r}")
        for source, target in spec.remappings:
            lines.append(f"  remap {source} -> {target}")
        if spec.arguments:
            lines.append(f"  arguments: {' '.join(spec.arguments)}")
    return "\n".join(lines)


def arguments_markdown(table: Sequence[LaunchArgument] = EGO_LAUNCH_ARGUMENTS) -> str:
    """An argument table as Markdown (name, default, description), as kept in launch/README.md."""
    rows = ["| argument | default | description |", "|---|---|---|"]
    for argument in table:
        default = f"`{argument.default}`" if argument.default else "(empty)"
        rows.append(f"| `{argument.name}` | {default} | {argument.description} |")
    return "\n".join(rows)
