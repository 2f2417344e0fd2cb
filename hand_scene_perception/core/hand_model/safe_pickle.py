"""Load MANO model files without letting them run code.

MANO ships as Python-2 pickles. ``pickle.load`` on such a file executes whatever
callables the file names, so a tampered download could run arbitrary code. This
module unpickles through an allow-list: only numpy array/dtype reconstruction,
scipy's CSC/CSR matrix classes, a handful of harmless builtins the Python-2 and
Python-3 pickle formats need, and chumpy's plain ``Ch`` container are accepted.
Chumpy itself is never imported: its ``Ch`` is mapped to a small stand-in that keeps
the pickled state and hands back the array stored in it. Every other global is
refused with :class:`UnsafeModelFileError` before anything is called.

The result is always a plain ``dict[str, np.ndarray]`` of dense arrays (sparse
matrices densified, strings as 0-d unicode arrays), the same shape of data that
:func:`load_mano_npz` returns for the ``.npz`` variant.
"""

from __future__ import annotations

import codecs
import copyreg
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse


class UnsafeModelFileError(pickle.UnpicklingError):
    """A model file asked for something outside the allow-list (or holds data we refuse)."""


class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the pickled state, exposes the array in ``x``.

    A free ``Ch`` pickles as its instance ``__dict__``; the value lives under ``x``.
    Bookkeeping entries (dirty-variable sets, flags) are kept but ignored.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "x" not in state:
            raise UnsafeModelFileError("chumpy.ch.Ch object without an 'x' array in its pickled state")
        self.state = state

    @property
    def r(self) -> np.ndarray:
        """The value, as chumpy's ``.r`` would return it."""
        return np.asarray(self.state["x"])


# numpy's own reconstruction functions, taken from its reducers so that the module
# they live in (numpy.core in 1.x, numpy._core in 2.x) does not matter here.
_NP_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_NP_SCALAR = np.float64(0).__reduce__()[0]

_ALLOWED: dict[tuple[str, str], Any] = {
    # numpy arrays, scalars and dtypes, as written by numpy 1.x/Python 2 and numpy 2.x.
    ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _NP_SCALAR,
    ("numpy._core.multiarray", "scalar"): _NP_SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # scipy sparse matrices under their old public and current private module names.
    ("scipy.sparse.csc", "csc_matrix"): scipy.sparse.csc_matrix,
    ("scipy.sparse._csc", "csc_matrix"): scipy.sparse.csc_matrix,
    ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
    ("scipy.sparse._csr", "csr_matrix"): scipy.sparse.csr_matrix,
    # chumpy's free variable container.
    ("chumpy.ch", "Ch"): _ChumpyArray,
    # Pickle plumbing: bytes in Python-3 protocol-2 files, the set in chumpy's state,
    # and protocol 0/1 reconstruction of new-style objects (whose class is itself allow-listed).
    ("_codecs", "encode"): codecs.encode,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves globals only from :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeModelFileError(
                f"refusing to load '{module}.{name}': a MANO model file only needs numpy arrays, "
                "scipy sparse matrices and chumpy arrays; this file may be corrupt or tampered with"
            ) from None


def _to_dense_array(key: str, value: Any) -> np.ndarray:
    """Turn one unpickled value into a plain dense numpy array."""
    if isinstance(value, _ChumpyArray):
        value = value.r
    elif scipy.sparse.issparse(value):
        value = value.toarray()
    array = np.asarray(value)
    if array.dtype == object:
        raise UnsafeModelFileError(f"entry {key!r} is not numeric or text data (type {type(value).__name__})")
    return array


def load_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Read a MANO ``.pkl`` through the allow-list and return dense numpy arrays by key."""
    with open(path, "rb") as handle:
        data = _RestrictedUnpickler(handle, encoding="latin1").load()
    if not isinstance(data, dict):
        raise UnsafeModelFileError(f"{path}: expected a dict at the top level, got {type(data).__name__}")
    return {str(key): _to_dense_array(str(key), value) for key, value in data.items()}


def load_mano_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a MANO ``.npz`` without pickle support (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: _to_dense_array(key, archive[key]) for key in archive.files}
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise
        raise UnsafeModelFileError(
            f"{path}: holds pickled object arrays; save MANO arrays as plain (dense) numpy arrays"
        ) from error
