"""The warehouse: KPI, attribution and quarantine tables in ClickHouse SQL.

`open_warehouse(settings)` gives a `Warehouse`; the embedded default is `ChdbWarehouse`, which only one
process may open (in the platform, `actors.StoreActor` owns it); `ClickHouseWarehouse` talks to a
ClickHouse server through clickhouse-connect and may be opened by any process. `mkt_ray.warehouse.http_endpoint`
serves a chDB path over ClickHouse's HTTP interface (tests, local development). Prefer `{name:Type}` query parameters
to building SQL; `quote_literal` / `quote_identifier` cover the places parameters cannot go.
"""

from mkt_ray.warehouse._chdb import ChdbWarehouse
from mkt_ray.warehouse._clickhouse import ClickHouseWarehouse
from mkt_ray.warehouse._open import ensure_schema, open_warehouse
from mkt_ray.warehouse._protocol import Warehouse
from mkt_ray.warehouse._sql import encode_params, quote_identifier, quote_literal, split_table

__all__ = [
    "ChdbWarehouse",
    "ClickHouseWarehouse",
    "Warehouse",
    "encode_params",
    "ensure_schema",
    "open_warehouse",
    "quote_identifier",
    "quote_literal",
    "split_table",
]
