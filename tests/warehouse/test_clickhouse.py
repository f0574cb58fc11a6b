"""What only the ClickHouse server backend does: settings, credentials, TLS, and no single owner."""

from __future__ import annotations

import pyarrow as pa
import pytest
import ray

from mkt_ray.embedded import self_signed_certificate
from mkt_ray.errors import WarehouseError
from mkt_ray.settings import Settings
from mkt_ray.warehouse import ClickHouseWarehouse, ensure_schema, open_warehouse
from mkt_ray.warehouse.http_endpoint import EndpointProcess
from tests.warehouse.conftest import CH_PASSWORD, CH_USER

DDL = ("CREATE TABLE IF NOT EXISTS writes (writer UInt32, n UInt64) ENGINE = MergeTree ORDER BY writer"
       " SETTINGS non_replicated_deduplication_window = 100")


def server_settings(url: str, database: str, **warehouse) -> Settings:
    return Settings(warehouse={"backend": "clickhouse", "url": url, "database": database, "username": CH_USER,
                               "password": CH_PASSWORD, **warehouse})


def test_open_warehouse_opens_the_server_with_the_settings_credentials(clickhouse_endpoint):
    with open_warehouse(server_settings(clickhouse_endpoint.url, "opened")) as wh:
        assert isinstance(wh, ClickHouseWarehouse)
        assert wh.query_rows("SELECT currentDatabase(), {x:String}", {"x": "ok"}) == [("opened", "ok")]


def test_wrong_password_is_refused_with_a_clear_error(clickhouse_endpoint):
    with pytest.raises(WarehouseError, match="authentication failed: check warehouse.username and warehouse.password"):
        ClickHouseWarehouse(clickhouse_endpoint.url, "mkt", CH_USER, "wrong")


@pytest.mark.parametrize("url", ["clickhouse:8123", "ftp://host:21", "https://"])
def test_malformed_url_is_refused(url):
    with pytest.raises(WarehouseError, match="must look like"):
        ClickHouseWarehouse(url, "mkt")


def test_tls_with_the_servers_ca_and_refused_with_another(tmp_path):
    server = self_signed_certificate(tmp_path / "server")
    stranger = self_signed_certificate(tmp_path / "stranger")
    with EndpointProcess(tmp_path / "ch", CH_USER, CH_PASSWORD, cert=server.cert, key=server.key) as endpoint:
        assert endpoint.url.startswith("https://")
        settings = server_settings(endpoint.url, "tls", ca_cert=server.cert)
        with open_warehouse(settings) as wh:
            ensure_schema(wh, [DDL])
            wh.insert_arrow("writes", pa.table({"writer": pa.array([7], pa.uint32()), "n": pa.array([3], pa.uint64())}))
            assert wh.query_rows("SELECT writer, n FROM writes") == [(7, 3)]
        with pytest.raises(WarehouseError, match="TLS certificate is not trusted .*warehouse.ca_cert"):
            open_warehouse(server_settings(endpoint.url, "tls", ca_cert=stranger.cert))
        with pytest.raises(WarehouseError, match=r"cannot connect to ClickHouse at http://"):
            ClickHouseWarehouse(endpoint.url.replace("https://", "http://"), "tls", CH_USER, CH_PASSWORD,
                                connect_timeout_s=2)


def write_batches(settings: Settings, writer: int, batches: int) -> None:
    """Open the warehouse in the calling process and insert `batches` rows; batch b carries token writer-b."""
    with open_warehouse(settings) as wh:
        for b in range(batches):
            rows = pa.table({"writer": pa.array([writer], pa.uint32()), "n": pa.array([b + 1], pa.uint64())})
            wh.insert_arrow("writes", rows, dedup_token=f"{writer}-{b}")
            wh.insert_arrow("writes", rows, dedup_token=f"{writer}-{b}")  # a retried write changes nothing


write_batches_remotely = ray.remote(num_cpus=0)(write_batches)


def test_every_process_reads_and_writes_directly(ray_session, clickhouse_endpoint):
    """This process and a Ray worker write at the same time, each through its own connection."""
    settings = server_settings(clickhouse_endpoint.url, "shared")
    with open_warehouse(settings) as wh:
        ensure_schema(wh, [DDL])
    remote = write_batches_remotely.remote(settings, 1, 3)
    write_batches(settings, 0, 3)
    ray.get(remote)
    with open_warehouse(settings) as wh:
        rows = wh.query_rows("SELECT writer, count(), sum(n) FROM writes GROUP BY writer ORDER BY writer")
    assert rows == [(writer, 3, 6) for writer in range(2)]  # 1+2+3 per writer, each batch once
