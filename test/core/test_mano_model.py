"""MANO behind the hand-model interface, on synthetic files written like the real (license-gated) ones.

The fixture writes MANO_RIGHT/LEFT files with the real keys, shapes and dtypes: Python-2
style protocol-2 pickles (text and bytes as BINSTRING records, read back with
encoding='latin1'), a scipy CSC J_regressor and shapedirs as a chumpy ``Ch`` record,
without needing chumpy installed. Geometry is random but well formed: a closed convex
surface with a wrist-like hole, 778 vertices and 1538 outward-wound faces.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial import ConvexHull

from hand_scene_perception.core.hand_model import (
    MANO_JOINT_NAMES,
    MODEL_TO_MEDIAPIPE,
    HandModel,
    HandSide,
    create_hand_model,
)
from hand_scene_perception.core.hand_model.mano import (
    HGGT_TIP_VERTEX_IDS,
    MANO_TIP_VERTEX_IDS,
    ManoHandModel,
    outward_faces,
)
from hand_scene_perception.core.hand_model.safe_pickle import (
    UnsafeModelFileError,
    load_mano_npz,
    load_mano_pickle,
)

NUM_VERTS, NUM_FACES = 778, 1538
MANO_KINTREE_PARENTS = [4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


# --------------------------------------------------------------------------- file writers


class _FakeCh:
    """Pickles exactly as a free ``chumpy.ch.Ch`` does (class global, NEWOBJ, instance dict)."""

    def __init__(self, x: np.ndarray) -> None:
        self.state = {
            "_dirty_vars": {"x"},
            "_itr": None,
            "_make_dense": False,
            "_make_sparse": False,
            "_depends_on_deps": {},
            "x": x,
        }

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (_FakeCh,), self.state


class _Py2StylePickler(pickle._Pickler):  # the pure-Python pickler lets us choose opcodes
    """Writes text and bytes as Python-2 ``str`` records and _FakeCh as chumpy's class, as MANO's files do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        if obj is _FakeCh:
            self.write(pickle.GLOBAL + b"chumpy.ch\nCh\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _write_py2_pickle(path: Path, data: dict) -> None:
    with open(path, "wb") as handle:
        _Py2StylePickler(handle, protocol=2).dump(data)


def _surface(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """778 points on an ellipsoid, hull-triangulated, wound outward, with a hole cut at -y (the 'wrist')."""
    i = np.arange(NUM_VERTS) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / NUM_VERTS), np.pi * (1 + 5**0.5) * i
    unit = np.stack([np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)], axis=1)
    verts = unit * np.array([0.04, 0.09, 0.015]) + np.array([0.0, 0.08, 0.0])
    faces = ConvexHull(verts).simplices.astype(np.int64)
    a, b, c = (verts[faces[:, k]] for k in range(3))
    inward = np.einsum("fi,fi->f", np.cross(b - a, c - a), (a + b + c) / 3 - verts.mean(axis=0)) < 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    keep = np.argsort(verts[faces].mean(axis=1)[:, 1])[len(faces) - NUM_FACES :]
    return verts, faces[np.sort(keep)]


def _mano_right(rng: np.random.Generator) -> dict:
    verts, faces = _surface(rng)
    rows = np.repeat(np.arange(16), 12)
    cols = rng.choice(NUM_VERTS, size=rows.size)
    j_reg = scipy.sparse.csc_matrix((rng.uniform(0.1, 1.0, rows.size), (rows, cols)), shape=(16, NUM_VERTS))
    j_reg = scipy.sparse.csc_matrix(j_reg.multiply(1.0 / j_reg.sum(axis=1)))
    return {
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "f": faces.astype(np.uint32),
        "J_regressor": j_reg,
        "kintree_table": np.stack([np.array(MANO_KINTREE_PARENTS), np.arange(16)]).astype(np.int64),
        "J": j_reg @ verts,
        "bs_style": "lbs",
        "hands_coeffs": rng.normal(size=(10, 45)),
        "weights": rng.dirichlet(np.ones(16), size=NUM_VERTS),
        "posedirs": rng.normal(scale=1e-3, size=(NUM_VERTS, 3, 135)),
        "hands_mean": rng.normal(scale=0.2, size=45),
        "v_template": verts,
        "shapedirs": rng.normal(scale=1e-2, size=(NUM_VERTS, 3, 10)),
        "bs_type": "lrotmin",
    }


def _mano_left(right: dict, mirrored_shapedirs: bool) -> dict:
    """The right model mirrored in x; the faces are the right's (so inward-wound), as a lazy export would leave them.

    mirrored_shapedirs=False reproduces the bug (smplx#48): the x part of the shape basis is not negated.
    """
    left = dict(right)
    left["v_template"] = right["v_template"] * np.array([-1.0, 1.0, 1.0])
    left["J"] = right["J"] * np.array([-1.0, 1.0, 1.0])
    left["shapedirs"] = right["shapedirs"] * (np.array([-1.0, 1.0, 1.0])[:, None] if mirrored_shapedirs else 1.0)
    return left


def _write_pkl_dir(folder: Path, right: dict, left: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("MANO_RIGHT.pkl", right), ("MANO_LEFT.pkl", left)):
        _write_py2_pickle(folder / name, {**data, "shapedirs": _FakeCh(data["shapedirs"])})
    return folder


def _write_npz_dir(folder: Path, right: dict, left: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("MANO_RIGHT.npz", right), ("MANO_LEFT.npz", left)):
        dense = {k: (v.toarray() if scipy.sparse.issparse(v) else np.asarray(v)) for k, v in data.items()}
        np.savez(folder / name, **dense)
    return folder


@pytest.fixture(scope="module")
def mano_data() -> dict:
    return _mano_right(np.random.default_rng(7))


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory, mano_data) -> Path:
    left = _mano_left(mano_data, mirrored_shapedirs=False)
    return _write_pkl_dir(tmp_path_factory.mktemp("mano_pkl"), mano_data, left)


@pytest.fixture(scope="module")
def model(mano_dir) -> ManoHandModel:
    return ManoHandModel(mano_dir)


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    corners = verts[faces] - verts.mean(axis=0)
    return float(np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6)


def _random_pose(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.normal(scale=0.3, size=(batch, 16, 3)).astype(np.float32)


# --------------------------------------------------------------------------- safe loading


def test_pickle_loads_as_dense_numpy(mano_dir, mano_data):
    data = load_mano_pickle(mano_dir / "MANO_RIGHT.pkl")
    assert all(type(v) is np.ndarray for v in data.values())
    assert data["J_regressor"].shape == (16, NUM_VERTS)
    assert np.allclose(data["J_regressor"], mano_data["J_regressor"].toarray())
    assert np.array_equal(data["shapedirs"], mano_data["shapedirs"])  # unwrapped from the chumpy record
    assert np.array_equal(data["f"], mano_data["f"]) and data["f"].dtype == np.uint32
    assert str(data["bs_style"]) == "lbs" and str(data["bs_type"]) == "lrotmin"


def test_pickle_loading_never_imports_chumpy(mano_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "chumpy", None)  # any import of chumpy would now fail
    monkeypatch.setitem(sys.modules, "chumpy.ch", None)
    assert load_mano_pickle(mano_dir / "MANO_LEFT.pkl")["shapedirs"].shape == (NUM_VERTS, 3, 10)


def test_genuine_chumpy_pickle_is_read(tmp_path):
    import chumpy  # chumpy-fixed, a test requirement: writes a pickle the way MANO's authors did

    values = np.arange(24.0).reshape(2, 3, 4)
    path = tmp_path / "ch.pkl"
    path.write_bytes(pickle.dumps({"shapedirs": chumpy.Ch(values)}, protocol=2))
    assert np.array_equal(load_mano_pickle(path)["shapedirs"], values)


def test_legacy_module_names_resolve(tmp_path):
    # Python-2 era files name scipy's classes under their old public modules.
    blob = pickle.dumps({"m": scipy.sparse.csc_matrix(np.eye(3))}, protocol=2)
    path = tmp_path / "legacy.pkl"
    path.write_bytes(blob.replace(b"scipy.sparse._csc", b"scipy.sparse.csc"))
    assert b"scipy.sparse.csc\n" in path.read_bytes()
    assert np.array_equal(load_mano_pickle(path)["m"], np.eye(3))


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evals:
    def __reduce__(self):
        return eval, ("__import__('os').getpid()",)


def test_pickle_calling_os_system_is_refused_without_running(tmp_path, mano_data):
    marker = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": mano_data["v_template"], "x": _RunsShell(marker)}, protocol=2))
    with pytest.raises(UnsafeModelFileError, match=rf"'{os.system.__module__}\.system'"):
        load_mano_pickle(path)
    assert not marker.exists()


def test_pickle_calling_eval_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": _Evals()}, protocol=4))
    with pytest.raises(UnsafeModelFileError, match=r"'builtins\.eval'"):
        load_mano_pickle(path)


def test_unlisted_chumpy_expression_is_refused(tmp_path):
    path = tmp_path / "expr.pkl"
    path.write_bytes(b"\x80\x02cchumpy.ch_ops\nadd\nq\x00.")
    with pytest.raises(UnsafeModelFileError, match=r"'chumpy\.ch_ops\.add'"):
        load_mano_pickle(path)


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "MANO_RIGHT.npz"
    np.savez(path, J_regressor=np.array([scipy.sparse.eye(3)], dtype=object))
    with pytest.raises(UnsafeModelFileError, match="object arrays"):
        load_mano_npz(path)


# --------------------------------------------------------------------------- model


def test_is_a_hand_model_with_expected_sizes(model):
    assert isinstance(model, HandModel)
    assert (model.name, model.num_vertices, model.num_shape_params) == ("mano", 778, 10)
    for side in ("right", HandSide.LEFT):
        faces = model.faces(side)
        assert faces.shape == (NUM_FACES, 3) and faces.dtype == np.int64


def test_output_shapes_numpy(model):
    out = model.forward(np.zeros((16, 3), dtype=np.float32))
    assert isinstance(out.vertices, np.ndarray) and out.vertices.dtype == np.float32
    assert out.vertices.shape == (1, NUM_VERTS, 3) and out.joints.shape == (1, 21, 3)
    assert isinstance(out.faces, np.ndarray) and out.faces.shape == (NUM_FACES, 3)


def test_zero_pose_is_template_and_joint_order(model, mano_data):
    out = model.forward(np.zeros((1, 48)), side="right")
    verts = mano_data["v_template"]
    assert np.allclose(out.vertices[0], verts, atol=1e-6)  # flat_hand_mean: zero pose is the rest (flat) hand
    model_rows = np.concatenate([mano_data["J_regressor"] @ verts, verts[list(MANO_TIP_VERTEX_IDS)]])
    assert np.allclose(out.joints[0], model_rows[list(MODEL_TO_MEDIAPIPE)], atol=1e-6)
    assert np.allclose(out.joints[0, 5], mano_data["J_regressor"][[MANO_JOINT_NAMES.index("index1")]] @ verts)


def test_tips_follow_vertices_when_posed(model):
    pose = _random_pose(np.random.default_rng(1), 3)
    for side in HandSide:
        out = model.forward(pose, side=side)
        for row, vertex in zip((4, 8, 12, 16, 20), (744, 320, 443, 554, 671), strict=True):
            assert np.allclose(out.joints[:, row], out.vertices[:, vertex], atol=1e-6)


def test_wrist_rotates_in_place_and_transl_shifts(model, mano_data):
    rng = np.random.default_rng(2)
    pose, transl = _random_pose(rng, 4), rng.normal(size=(4, 3)).astype(np.float32)
    wrist_rest = (mano_data["J_regressor"] @ mano_data["v_template"])[0]
    plain = model.forward(pose)
    moved = model.forward(pose, transl=transl)
    assert np.allclose(plain.joints[:, 0], wrist_rest, atol=1e-5)
    assert np.allclose(moved.vertices, plain.vertices + transl[:, None], atol=1e-5)
    assert np.allclose(moved.joints, plain.joints + transl[:, None], atol=1e-5)
    one = model.forward(pose[:1], shape=np.ones(10), transl=transl[0])
    assert one.vertices.shape == (1, NUM_VERTS, 3)


def test_torch_in_torch_out_with_gradients(model):
    pose = torch.tensor(_random_pose(np.random.default_rng(3), 2), requires_grad=True)
    shape = torch.zeros(2, 10, requires_grad=True)
    out = model.forward(pose, shape, side="left", transl=torch.ones(3))
    assert isinstance(out.vertices, torch.Tensor) and isinstance(out.joints, torch.Tensor)
    assert isinstance(out.faces, torch.Tensor) and out.faces.dtype == torch.long
    (out.joints.square().sum() + out.vertices.sum()).backward()
    for grad in (pose.grad, shape.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_float64_torch_is_kept_and_float32_restored(model):
    pose = torch.tensor(_random_pose(np.random.default_rng(4), 1), dtype=torch.float64)
    assert model.forward(pose).vertices.dtype == torch.float64
    out32 = model.forward(pose.float())
    assert out32.vertices.dtype == torch.float32
    assert torch.allclose(out32.vertices.double(), model.forward(pose).vertices, atol=1e-5)


def test_bad_inputs_are_rejected(model):
    with pytest.raises(ValueError, match="pose"):
        model.forward(np.zeros((15, 3)))
    with pytest.raises(ValueError, match="shape"):
        model.forward(np.zeros((16, 3)), shape=np.zeros(7))
    with pytest.raises(ValueError, match="left"):
        model.forward(np.zeros((16, 3)), side="both")


def test_faces_are_wound_outward_on_both_sides(model, mano_data):
    left_verts = model.forward(np.zeros((16, 3)), side="left").vertices[0]
    assert _signed_volume(mano_data["v_template"], model.faces("right")) > 0
    assert _signed_volume(left_verts, model.faces("left")) > 0  # the file's (inward) winding was flipped
    assert np.array_equal(outward_faces(mano_data["v_template"], model.faces("right")), model.faces("right"))


def _shape_offsets(hand: ManoHandModel, side: str) -> np.ndarray:
    beta = np.linspace(-2, 2, 10)
    zero = np.zeros((16, 3))
    return hand.forward(zero, shape=beta, side=side).vertices[0] - hand.forward(zero, side=side).vertices[0]


def test_left_shapedirs_fix_applied_when_x_rows_match(model):
    assert model.left_shapedirs_fixed
    mirror = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    assert np.allclose(_shape_offsets(model, "left"), _shape_offsets(model, "right") * mirror, atol=1e-6)


def test_left_shapedirs_left_alone_when_already_mirrored(tmp_path, mano_data):
    left = _mano_left(mano_data, mirrored_shapedirs=True)
    hand = ManoHandModel(_write_pkl_dir(tmp_path, mano_data, left))
    assert not hand.left_shapedirs_fixed
    mirror = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    assert np.allclose(_shape_offsets(hand, "left"), _shape_offsets(hand, "right") * mirror, atol=1e-6)


def test_npz_files_give_the_same_model(tmp_path, mano_data, model):
    left = _mano_left(mano_data, mirrored_shapedirs=False)
    hand = ManoHandModel(_write_npz_dir(tmp_path / "mano", mano_data, left))  # found in the mano/ subfolder
    assert hand.source_files[HandSide.RIGHT].suffix == ".npz"
    pose = _random_pose(np.random.default_rng(5), 2)
    for side in HandSide:
        a, b = hand.forward(pose, np.ones(10), side), model.forward(pose, np.ones(10), side)
        assert np.allclose(a.vertices, b.vertices, atol=1e-6) and np.allclose(a.joints, b.joints, atol=1e-6)


def test_options_mean_pose_and_tip_ids(mano_dir, mano_data):
    hand = ManoHandModel(mano_dir, flat_hand_mean=False, tip_vertex_ids=HGGT_TIP_VERTEX_IDS)
    out = hand.forward(np.zeros((16, 3)))
    assert not np.allclose(out.vertices[0], mano_data["v_template"], atol=1e-4)  # MANO's mean pose is applied
    assert np.allclose(out.joints[0, [4, 8, 12, 16, 20]], out.vertices[0, list(HGGT_TIP_VERTEX_IDS)])
    with pytest.raises(ValueError, match="num_shape_params"):
        ManoHandModel(mano_dir, num_shape_params=11)
    with pytest.raises(ValueError, match="tip_vertex_ids"):
        ManoHandModel(mano_dir, tip_vertex_ids=(1, 2, 3, 4, 778))


def test_missing_files_say_where_to_put_what(tmp_path, mano_data):
    with pytest.raises(FileNotFoundError, match=r"MANO_RIGHT\.pkl and MANO_LEFT\.pkl.*mano\.is\.tue\.mpg\.de") as info:
        ManoHandModel(tmp_path)
    assert str(tmp_path) in str(info.value)
    _write_py2_pickle(tmp_path / "MANO_RIGHT.pkl", mano_data)
    with pytest.raises(FileNotFoundError, match=r"found: MANO_LEFT\.pkl \(or"):
        ManoHandModel(tmp_path)


def test_file_without_mano_keys_is_rejected(tmp_path, mano_data):
    for name in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl"):
        _write_py2_pickle(tmp_path / name, {k: v for k, v in mano_data.items() if k != "weights"})
    with pytest.raises(ValueError, match="missing weights"):
        ManoHandModel(tmp_path)


# --------------------------------------------------------------------------- factory and package


def test_factory_builds_mano_and_reports_errors(mano_dir):
    assert create_hand_model(" MANO ", mano_dir=mano_dir).name == "mano"
    with pytest.raises(ValueError, match="mano_dir"):
        create_hand_model("mano")
    with pytest.raises(ValueError, match=r"'smpl'.*open.*mano"):
        create_hand_model("smpl")


def test_package_import_loads_no_model_implementation():
    code = (
        "import sys, hand_scene_perception.core.hand_model as hm; "
        "loaded = [m for m in ('smplx', hm.__name__ + '.mano', hm.__name__ + '.open_model') if m in sys.modules]; "
        "print(loaded)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"
