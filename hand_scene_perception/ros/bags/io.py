"""rosbag2 files through rosbags (MCAP and sqlite3, no ROS install needed): opening bags with clear errors,
a typestore that knows this project's messages, and a writer whose output appears only once it is complete.

Output naming (every command that writes a bag): ``OUT.mcap`` or ``OUT.db3`` is one self-contained storage
file (the rosbag2 metadata is embedded; Foxglove, ``ros2 bag`` and rosbags open it), any other name is a
rosbag2 directory with ``metadata.yaml``. The bag is written into a hidden ``.OUT.partial-PID`` folder beside
the target and moved into place on close, so an interrupted run never leaves half a file under the final name.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
FILE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
# Project messages are found in the installed interface package (share/<pkg>/msg) or, in a source checkout,
# beside this package.
_SOURCE_INTERFACES = Path(__file__).resolve().parents[3]


class BagError(ValueError):
    """A bag that cannot be read or written as asked; the text names the file and what is wrong."""


def _interface_dirs(package: str) -> list[Path]:
    """Folders that may hold ``package``'s .msg files: every ament prefix's share/<package>/msg, the prefix
    the importable Python package was installed into, and the source checkout."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    try:
        module = importlib.import_module(package)
        if module.__file__ is not None:  # <prefix>/lib/pythonX.Y/site-packages/<package>/__init__.py
            prefixes.append(Path(module.__file__).resolve().parents[4])
    except ImportError:
        pass
    folders = [prefix / "share" / package / "msg" for prefix in prefixes]
    folders.append(_SOURCE_INTERFACES / package / "msg")
    return [folder for folder in folders if folder.is_dir()]


def _register_package(typestore: Typestore, package: str) -> bool:
    """Add every .msg of ``package`` to ``typestore``; False when no definitions were found."""
    for folder in _interface_dirs(package):
        types: dict = {}
        for path in sorted(folder.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{package}/msg/{path.stem}"))
        if types:
            typestore.register(types)
            return True
    return False


@functools.lru_cache(maxsize=1)
def message_typestore() -> Typestore:
    """ROS 2 Jazzy's standard messages (the default line; Kilted's differ only by nav_msgs/Goals, which no bag
    here holds) plus hand_scene_msgs (registered from its .msg files when found)."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    _register_package(typestore, "hand_scene_msgs")
    return typestore


def message_definition(msgtype: str, typestore: Typestore | None = None) -> tuple[str, str]:
    """(concatenated ros2msg definition, RIHS01 hash) of ``msgtype``, as rosbag2 embeds them in a bag; types
    outside the typestore are registered from their installed .msg files, dependencies included."""
    typestore = typestore or message_typestore()
    tried: set[str] = set()
    while True:
        try:
            definition, _ = typestore.generate_msgdef(msgtype, ros_version=2)
            return definition, typestore.hash_rihs01(msgtype)
        except TypesysError as error:
            match = re.search(r"Type '([^']+)' is unknown", str(error))
            missing = match.group(1) if match else msgtype
            package = missing.split("/")[0]
            if package in tried or not _register_package(typestore, package):
                needed = "" if missing == msgtype else f" (needed by {msgtype})"
                raise BagError(
                    f"no message definition for {missing}{needed}: install its interface package "
                    "(share/<package>/msg/*.msg under AMENT_PREFIX_PATH)"
                ) from None
            tried.add(package)


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name``; BagError when its Python package is not installed."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise BagError(f"not a message type name: {msgtype!r} (expected package/msg/Name)")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise BagError(
            f"message type {msgtype} is not installed (no Python module {parts[0]}.msg.{parts[2]})"
        ) from None


def open_bag(path: Path) -> Reader:
    """An opened rosbags Reader over a rosbag2 directory or a single .mcap/.db3 file, with errors that say
    which file and why (missing, not a bag, damaged)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such bag: {path}")
    if path.is_file() and path.suffix not in FILE_SUFFIXES:
        raise BagError(f"{path} is not a bag: expected a rosbag2 directory or a .mcap/.db3 file")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags raises several types (ReaderError, struct.error, apsw errors, ...)
        raise BagError(f"cannot read {path} as a rosbag2 bag: {error}") from None
    return reader


def read_messages(reader: Reader, connections: Sequence[Connection] = ()) -> Iterator[tuple[Connection, int, bytes]]:
    """(connection, log time ns, CDR bytes) in log-time order; a damaged file part-way raises BagError."""
    try:
        for connection, timestamp, data in reader.messages(connections=connections):
            yield connection, timestamp, data if isinstance(data, bytes) else bytes(data)
    except (BagError, KeyboardInterrupt):
        raise
    except Exception as error:
        raise BagError(f"{reader.path} is damaged: {error}") from None


def select_connections(reader: Reader, topics: Sequence[str] | None) -> list[Connection]:
    """The bag's connections on ``topics`` (all when None); an unknown topic is an error listing the bag's."""
    available = sorted({c.topic for c in reader.connections})
    if not topics:
        return list(reader.connections)
    unknown = [t for t in topics if t not in available]
    if unknown:
        raise BagError(f"topic(s) {', '.join(unknown)} not in {reader.path}; it has: {', '.join(available) or 'none'}")
    return [c for c in reader.connections if c.topic in topics]


def qos_profile(history_depth: int, reliable: bool, transient_local: bool) -> Qos:
    """A rosbags QoS record (what a bag stores as a topic's offered QoS)."""
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(
        history=QosHistory.KEEP_LAST, depth=history_depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=never, lifespan=never, liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
        avoid_ros_namespace_conventions=False,
    )  # fmt: skip


def output_storage(out: Path, storage: str | None) -> tuple[str, bool]:
    """(storage name, single file?) for an output name: .mcap/.db3 decide the storage themselves."""
    if storage is not None and storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    implied = FILE_SUFFIXES.get(out.suffix)
    if implied is not None:
        if storage is not None and storage != implied:
            raise BagError(f"{out} names a {implied} file but --storage is {storage}")
        return implied, True
    return storage or "mcap", False


class BagWriter:
    """Writes one bag (see the module note on names); connections are added on first use per topic.

    Use as a context manager: leaving it, also through an exception or Ctrl-C, finalises the bag with
    everything written so far and moves it into place (a file output replaces an older file; a directory
    output must not exist yet).
    """

    def __init__(self, out: Path, storage: str | None = None) -> None:
        self.out = Path(out)
        self.storage, self.single_file = output_storage(self.out, storage)
        if self.out.is_dir() or (not self.single_file and self.out.exists()):
            raise BagError(f"{self.out} exists already; choose a new name (.mcap/.db3 file outputs are replaced)")
        if not self.out.parent.is_dir():
            raise BagError(f"cannot write {self.out}: no folder {self.out.parent}")
        self._staging = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging.mkdir()
        name = self.out.stem if self.single_file else self.out.name
        self._writer = Writer(
            self._staging / name, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[self.storage]
        )
        self._writer.open()
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` has a connection already."""
        return topic in self._connections

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        """Register ``topic`` with its type's full definition embedded (Foxglove decodes from it)."""
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise BagError(f"{topic} is already {self._connections[topic].msgtype}, not {msgtype}")
            return
        definition, digest = message_definition(msgtype)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, msgdef=definition, rihs01=digest, offered_qos_profiles=list(qos)
        )
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Append one CDR-serialised message on a registered topic at log time ``timestamp_ns``."""
        self._writer.write(self._connections[topic], int(timestamp_ns), data)
        self.counts[topic] += 1

    @property
    def closed(self) -> bool:
        """Whether the bag is finalised (later messages cannot be added)."""
        return self._writer.storage is None

    def close(self) -> Path:
        """Finalise the bag and move it to its name; returns that path."""
        if self.closed:
            return self.out
        self._writer.close()
        produced = self._writer.path
        if self.single_file:
            os.replace(next(produced.glob(f"*.{'mcap' if self.storage == 'mcap' else 'db3'}")), self.out)
        else:
            os.replace(produced, self.out)
        shutil.rmtree(self._staging, ignore_errors=True)
        return self.out

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.close()
        except Exception as close_error:  # keep the original error visible; say what happened to the bag
            print(f"hand-scene: could not finalise {self.out}: {close_error}", file=sys.stderr)
            if kind is None:
                raise
