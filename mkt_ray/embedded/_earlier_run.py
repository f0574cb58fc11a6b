"""What an earlier run on the embedded broker left in the data folder, set aside before a new run starts.

The embedded broker keeps its topics in memory: each start begins with empty topics whose offsets start
again at 0. The pipeline's durable state names Kafka offsets: the warehouse's ledger (the highest offset
applied per partition), the decoder checkpoints and the raw archive's file names, and quarantine and
attribution rows are keyed by (partition, offset). Carried over to a new broker, that state would take the
new stream's first offsets for applied ones (skipping those events) and the new rows would replace the
earlier run's. So the earlier run's local warehouse and raw store are moved, whole, to
`<data_dir>/previous/<UTC time>/`, nothing deleted; the tombstones of forgotten persons are copied back (a
forgotten person stays forgotten), and what names no offset (the model registry, quality reports) stays.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path


def _holds_data(path: Path, keep: str) -> bool:
    return path.is_dir() and any(entry.name != keep for entry in path.iterdir())


def set_aside_earlier_run(data_dir: Path, stores: Mapping[str, Path], now: datetime | None = None) -> Path | None:
    """Move each of `stores` ({name: folder}) that holds data to `<data_dir>/previous/<UTC time>/<name>`;
    a `_tombstones` folder is copied back to where it was. Returns the folder they went to, or None when
    none held anything (a first run)."""
    from mkt_ray.rawstore import TOMBSTONES_FOLDER  # pyarrow and numpy: only for a platform that starts

    held = {name: path for name, path in stores.items() if _holds_data(path, TOMBSTONES_FOLDER)}
    if not held:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H-%M-%SZ")
    target = data_dir / "previous" / stamp
    suffix = 1
    while target.exists():  # two starts within a second
        target, suffix = data_dir / "previous" / f"{stamp}-{suffix}", suffix + 1
    target.mkdir(parents=True)
    for name, path in held.items():
        shutil.move(str(path), str(target / name))
        if (target / name / TOMBSTONES_FOLDER).is_dir():
            shutil.copytree(target / name / TOMBSTONES_FOLDER, path / TOMBSTONES_FOLDER)
    return target


def earlier_runs(data_dir: Path) -> tuple[int, int]:
    """How many earlier runs `<data_dir>/previous/` holds, and their bytes on disk (files' sizes)."""
    previous = data_dir / "previous"
    runs = [run for run in previous.iterdir() if run.is_dir()] if previous.is_dir() else []
    size = sum(path.stat().st_size for run in runs for path in run.rglob("*") if path.is_file())
    return len(runs), size
