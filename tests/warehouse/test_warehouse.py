"""The storage contract, on both backends: embedded chDB and a ClickHouse server through clickhouse-connect."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from mkt_ray.errors import WarehouseError
from mkt_ray.warehouse import Warehouse, ensure_schema, quote_identifier, quote_literal

KPI_DDL = (
    "CREATE TABLE IF NOT EXISTS kpi ("
    " tenant_id LowCardinality(String), campaign String, window_start DateTime64(3, 'UTC'),"
    " clicks UInt64, spend Decimal(18, 4), ctr Float64, note Nullable(String))"
    " ENGINE = MergeTree ORDER BY (tenant_id, campaign, window_start)"
    " SETTINGS non_replicated_deduplication_window = 1000"
)
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def kpi_batch(clicks: tuple[int, ...] = (10, 20), tenant_id: str = "acme") -> pa.Table:
    """A KPI batch; columns deliberately in a different order from the table, `note` omitted."""
    n = len(clicks)
    return pa.table(
        {
            "clicks": pa.array(clicks, pa.uint64()),
            "window_start": pa.array(
                [T0 + dt.timedelta(minutes=i) for i in range(n)], pa.timestamp("ms", "UTC")
            ),
            "tenant_id": [tenant_id] * n,
            "campaign": [f"c{i}" for i in range(n)],
            "spend": pa.array([Decimal("1.5") * (i + 1) for i in range(n)], pa.decimal128(18, 4)),
            "ctr": [0.25 * (i + 1) for i in range(n)],
        }
    )


@pytest.fixture
def wh(open_wh) -> Warehouse:
    wh = open_wh()
    ensure_schema(wh, [KPI_DDL])
    return wh


def count(wh: Warehouse, table: str = "kpi") -> int:
    return wh.query_rows(f"SELECT count() FROM {table}")[0][0]


def test_is_a_warehouse_with_its_database_current(wh):
    assert isinstance(wh, Warehouse)
    assert wh.query_rows("SELECT currentDatabase()") == [(wh.database,)]
    assert wh.query_rows("SHOW TABLES") == [("kpi",)]


def test_same_dedup_token_twice_inserts_once(wh):
    wh.insert_arrow("kpi", kpi_batch(), dedup_token="p0:0-99")
    wh.insert_arrow("kpi", kpi_batch(), dedup_token="p0:0-99")
    assert count(wh) == 2


def test_different_tokens_or_no_token_insert_again(wh):
    wh.insert_arrow("kpi", kpi_batch(), dedup_token="p0:0-99")
    wh.insert_arrow(f"{wh.database}.kpi", kpi_batch(), dedup_token="p0:100-199")
    assert count(wh) == 4
    wh.insert_arrow("kpi", kpi_batch())
    wh.insert_arrow("kpi", kpi_batch())
    assert count(wh) == 8


def test_dedup_log_survives_reopening(open_wh):
    wh = open_wh()
    ensure_schema(wh, [KPI_DDL])
    wh.insert_arrow("kpi", kpi_batch(), dedup_token="p1:0-9")
    wh.close()
    wh = open_wh()
    wh.insert_arrow("kpi", kpi_batch(), dedup_token="p1:0-9")
    assert count(wh) == 2


def test_query_rows_and_arrow_return_exact_values(wh):
    wh.insert_arrow("kpi", kpi_batch((7, 9)))
    rows = wh.query_rows("SELECT * FROM kpi ORDER BY campaign")
    assert rows == [
        ("acme", "c0", T0, 7, Decimal("1.5000"), 0.25, None),
        ("acme", "c1", T0 + dt.timedelta(minutes=1), 9, Decimal("3.0000"), 0.5, None),
    ]
    table = wh.query_arrow("SELECT campaign, clicks, window_start FROM kpi ORDER BY campaign")
    assert table.column_names == ["campaign", "clicks", "window_start"]
    assert table.column("clicks").to_pylist() == [7, 9]
    assert table.column("window_start").type == pa.timestamp("ms", "UTC")
    assert table.column("window_start").to_pylist() == [T0, T0 + dt.timedelta(minutes=1)]


def test_empty_result_keeps_its_schema(wh):
    table = wh.query_arrow("SELECT campaign, clicks FROM kpi")
    assert (table.num_rows, table.column_names) == (0, ["campaign", "clicks"])
    assert wh.query_rows("SELECT campaign FROM kpi") == []


def test_empty_batch_is_a_no_op(wh):
    wh.insert_arrow("kpi", kpi_batch().slice(0, 0), dedup_token="empty")
    assert count(wh) == 0


def test_params_keep_quotes_backslashes_and_types_as_data(wh):
    tricky = "o'brien \\' OR 1=1 --\\n\ttab"
    wh.insert_arrow("kpi", kpi_batch((1,), tenant_id=tricky))
    rows = wh.query_rows(
        "SELECT tenant_id, {none:Nullable(String)}, {words:Array(String)} FROM kpi"
        " WHERE tenant_id = {tenant:String} AND window_start >= {since:DateTime64(3, 'UTC')}"
        " AND clicks = {clicks:UInt64} AND ctr < {ctr:Float64}",
        {"tenant": tricky, "since": T0, "clicks": 1, "ctr": 0.5, "none": None, "words": ["a'b", "c\\d"]},
    )
    assert rows == [(tricky, None, ["a'b", "c\\d"])]
    # sub-second precision survives the round trip: 1 ms after T0 excludes the row at T0
    later = T0 + dt.timedelta(milliseconds=1)
    assert wh.query_rows("SELECT count() FROM kpi WHERE window_start >= {t:DateTime64(3, 'UTC')}", {"t": later}) == [(0,)]


def test_percent_signs_in_sql_stay_sql(wh):
    wh.insert_arrow("kpi", kpi_batch((1,), tenant_id="100%"))
    assert wh.query_rows("SELECT tenant_id FROM kpi WHERE tenant_id LIKE '%\\%'") == [("100%",)]
    assert wh.query_rows("SELECT count() FROM kpi WHERE tenant_id LIKE {p:String}", {"p": "1%", "unused": 3}) == [(1,)]


def test_naive_datetime_param_is_refused(wh):
    with pytest.raises(TypeError, match="timezone-aware"):
        wh.query_rows("SELECT {t:DateTime64(3)}", {"t": dt.datetime(2024, 1, 1)})  # noqa: DTZ001


def test_lightweight_delete(wh):
    wh.insert_arrow("kpi", kpi_batch((1, 2, 3)))
    wh.execute("DELETE FROM kpi WHERE clicks >= {min:UInt64}", {"min": 2})
    assert wh.query_rows("SELECT clicks FROM kpi") == [(1,)]


def test_quote_literal_escapes_injection(wh):
    for value in ["x' OR 1=1 --", "back\\slash", "\\' ; DROP TABLE kpi; --", "end\\", "line\nbreak\t\0"]:
        assert wh.query_rows(f"SELECT {quote_literal(value)}") == [(value,)]
    assert count(wh) == 0 and wh.query_rows("SHOW TABLES") == [("kpi",)]


def test_quote_identifier_keeps_backticks_inside(wh):
    name = "we`ird\\ col"
    assert wh.query_rows(f"SELECT 1 AS {quote_identifier(name)}") == [(1,)]
    assert wh.query_arrow(f"SELECT 1 AS {quote_identifier(name)}").column_names == [name]


@pytest.mark.parametrize("table", ["kpi; DROP TABLE kpi", "a.b.c", "`kpi`", ""])
def test_bad_table_names_are_refused(wh, table):
    with pytest.raises(WarehouseError, match="table name"):
        wh.insert_arrow(table, kpi_batch())


def test_dedup_token_needs_a_dedup_log(wh):
    wh.execute("CREATE TABLE plain (x UInt8) ENGINE = MergeTree ORDER BY x")
    with pytest.raises(WarehouseError, match="non_replicated_deduplication_window"):
        wh.insert_arrow("plain", pa.table({"x": pa.array([1], pa.uint8())}), dedup_token="t")
    with pytest.raises(WarehouseError, match="does not exist"):
        wh.insert_arrow("missing", pa.table({"x": [1]}), dedup_token="t")


def test_refused_sql_raises_warehouse_error_naming_the_store(wh):
    where = str(getattr(wh, "path", None) or wh.url)
    with pytest.raises(WarehouseError, match=where):
        wh.execute("SELEC 1")


def test_closed_warehouse_raises(open_wh):
    wh = open_wh()
    wh.close()
    wh.close()
    with pytest.raises(WarehouseError, match="closed"):
        wh.query_rows("SELECT 1")


def test_ensure_schema_runs_again_and_refuses_non_idempotent_ddl(wh):
    ensure_schema(wh, [KPI_DDL])
    with pytest.raises(WarehouseError, match="IF NOT EXISTS"):
        ensure_schema(wh, ["CREATE TABLE other (x UInt8) ENGINE = Memory", KPI_DDL])
    assert wh.query_rows("SHOW TABLES") == [("kpi",)]
