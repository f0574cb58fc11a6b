"""One platform at a time per data folder: a second is refused before it starts or moves anything, and a
holder killed outright leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors.launcher import Platform
from mkt_ray.embedded import DataDirLock
from mkt_ray.errors import MktRayError
from mkt_ray.settings import load_settings

HOLD = "import sys, time; from pathlib import Path; from mkt_ray.embedded import DataDirLock; " \
       "DataDirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)"


def test_a_second_platform_on_a_data_folder_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "warehouse").mkdir(parents=True)
    (data / "warehouse" / "store").write_text("the running platform's")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        platform = Platform(load_settings(data_dir=data, tenants={"acme": {}}))
        with pytest.raises(MktRayError) as refused, platform:
            pass
        assert str(refused.value) == (f"another mkt-ray platform (pid {holder.pid}) is using the data folder {data}; "
                                      "stop it, or give this one another folder (MKT_DATA_DIR)")
        assert platform.broker is None and platform.store is None  # nothing started
        assert (data / "warehouse" / "store").read_text() == "the running platform's"  # nothing moved aside
        assert not (data / "previous").exists()
        with pytest.raises(MktRayError, match=f"pid {holder.pid}"):  # also within one process
            DataDirLock(data).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up code runs: the kernel drops the lock
        holder.wait(timeout=30)
    first = DataDirLock(data).acquire()
    assert (data / ".lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(MktRayError):
        DataDirLock(data).acquire()
    first.release()
    DataDirLock(data).acquire().release()  # released: free again
