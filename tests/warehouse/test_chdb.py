"""What only the embedded chDB warehouse does: one process per data path, picked by default.

The storage contract itself is tested on both backends in test_warehouse.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest

from mkt_ray.errors import WarehouseError
from mkt_ray.settings import Settings
from mkt_ray.warehouse import ChdbWarehouse, open_warehouse, quote_literal


@pytest.fixture
def wh(tmp_path):
    wh = ChdbWarehouse(tmp_path / "wh", "mkt")
    yield wh
    wh.close()


def test_quote_literal_text():
    assert quote_literal("it's") == "'it\\'s'"
    assert quote_literal("a\\b") == "'a\\\\b'"
    assert [quote_literal(v) for v in (None, True, -3, 1.5)] == ["NULL", "true", "-3", "1.5"]


@pytest.mark.parametrize("value", [b"bytes", object(), ["list"], Decimal("1")])
def test_quote_literal_refuses_other_types(value):
    with pytest.raises(TypeError):
        quote_literal(value)


def test_open_warehouse_picks_the_backend(tmp_path):
    settings = Settings(data_dir=tmp_path)
    wh = open_warehouse(settings)
    try:
        assert isinstance(wh, ChdbWarehouse) and wh.path == (tmp_path / "warehouse").resolve()
    finally:
        wh.close()
    with pytest.raises(WarehouseError, match="needs warehouse.url"):
        open_warehouse(Settings(data_dir=tmp_path, warehouse={"backend": "clickhouse"}))


def test_second_process_cannot_open_the_same_path(wh):
    script = textwrap.dedent(
        f"""
        import sys
        from mkt_ray.errors import WarehouseError
        from mkt_ray.warehouse import ChdbWarehouse
        try:
            ChdbWarehouse({str(wh.path)!r}, "mkt")
        except WarehouseError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert str(wh.path) in proc.stdout and "one actor" in proc.stdout
