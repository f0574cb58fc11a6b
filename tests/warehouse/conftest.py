"""Warehouse fixtures: every storage test runs on both backends (embedded chDB, ClickHouse server).

The server is `mkt_ray.warehouse.http_endpoint` (ClickHouse's HTTP interface over chDB, in a child
process), reached through clickhouse-connect with a password, as a production server would be.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mkt_ray.warehouse import ChdbWarehouse, ClickHouseWarehouse, Warehouse
from mkt_ray.warehouse.http_endpoint import EndpointProcess

CH_USER, CH_PASSWORD = "mkt", "s3cret pass"


@pytest.fixture(scope="session")
def clickhouse_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointProcess]:
    """One endpoint for the session; tests keep apart by database name."""
    with EndpointProcess(tmp_path_factory.mktemp("clickhouse"), username=CH_USER, password=CH_PASSWORD) as endpoint:
        yield endpoint


@pytest.fixture(params=["chdb", "clickhouse"])
def open_wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Warehouse]]:
    """Factory `open_wh(name="wh")`: the same name reopens the same store (a chDB path, or a server database)."""
    opened: list[Warehouse] = []
    tag = uuid.uuid4().hex[:8]

    def _open(name: str = "wh") -> Warehouse:
        if request.param == "chdb":
            wh: Warehouse = ChdbWarehouse(tmp_path / name, "mkt")
        else:
            endpoint = request.getfixturevalue("clickhouse_endpoint")
            wh = ClickHouseWarehouse(endpoint.url, f"{name}_{tag}", CH_USER, CH_PASSWORD)
        opened.append(wh)
        return wh

    yield _open
    for wh in opened:
        wh.close()
