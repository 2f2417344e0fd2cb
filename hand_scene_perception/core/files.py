"""Atomic file writes: readers (people, other processes, a rerun after Ctrl-C) see the old file or the new one,
never half of one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a hidden temporary file beside ``path`` for writing and rename it onto ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is left as it
    was. The temporary file is created with the process umask (unlike ``tempfile.mkstemp``'s 0600), so the
    result has the permissions a plain ``open`` would give it. Text modes use ``newline=""`` (csv-ready).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
