"""One platform at a time per data folder: an exclusive lock on `<data_dir>/.lock`, held while it runs.

A second platform on the same folder would move the first one's live warehouse and raw store aside (the
embedded broker's start does that with an earlier run's data) and write into the same files. The lock is an
`flock` on an open file: the kernel releases it when the holder closes it or dies, even killed outright, so
a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mkt_ray.errors import MktRayError

LOCK_NAME = ".lock"


class DataDirLock:
    """`acquire()` takes the folder or raises MktRayError naming the holder's pid; `release()` gives it back."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise MktRayError(
                f"another mkt-ray platform (pid {holder}) is using the data folder {self.path.parent}; stop it, or "
                "give this one another folder (MKT_DATA_DIR)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file releases the lock
