"""The query API's read model of `kpi_windows`: `campaigns/performance` pages from the replica's memory.

Why: on the embedded warehouse every SQL read is a Ray call to the one process that owns chDB, and chDB
spends about 5 ms of CPU on a one-hour page however small (benchmarks/api.py); on a 2-core machine that
was half of each request's CPU. The replica instead keeps the window sums of each tenant it has been asked
about: a snapshot from the store, then the store's log of KPI inserts applied in order
(`actors.store.KpiLog`). A page is then a few numpy operations over sorted arrays, with the same rows,
order and cursor as `_queries._performance_sql` (tests/serve/test_read_model.py holds the two equal).

Freshness: a request that finds the model older than `api.read_model_staleness_ms` first catches up (one
store call serves every request waiting meanwhile), so answers lag the table by at most that, far inside
the pipeline's 5 s event-to-KPI goal; 0 catches up on every request. Memory: at most
`api.read_model_rows` window rows per replica, least recently asked tenants dropped first; a tenant too
big for it, or with data the arrays cannot hold, is read with SQL.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serve_apps._queries import _AMOUNT_KEYS, WINDOWS, PerformanceQuery

_MINUTE_MS = 60_000
# a row's key: (start minute, campaign code, source code) in one int64, so a tenant's windows of one kind
# are one sorted array and a time range is two binary searches
_SOURCE_BITS, _CAMPAIGN_BITS = 10, 20
_MAX_SOURCES, _MAX_CAMPAIGNS = 1 << _SOURCE_BITS, 1 << _CAMPAIGN_BITS
_MINUTE_SHIFT = _SOURCE_BITS + _CAMPAIGN_BITS
_MAX_MINUTE = (1 << (62 - _MINUTE_SHIFT)) - 1  # so the key one past it still fits an int64
_COUNTS = ("impressions", "clicks", "conversions")
_AMOUNTS = ("cost", "revenue")
_SUMS = (*_COUNTS, *_AMOUNTS)
_RESULT_SCHEMA = pa.schema([("campaign_id", pa.string()), ("source", pa.string()), ("ws", pa.int64()),
                            ("imp", pa.int64()), ("clk", pa.int64()), ("conv", pa.int64()),
                            ("cst", pa.float64()), ("rev", pa.float64()), ("k0", pa.float64())])
_SORT_COLUMNS = {"window_start": None, "impressions": "impressions", "clicks": "clicks",
                 "conversions": "conversions", "cost": "cost", "revenue": "revenue"}
_TOO_BIG_RETRY_S = 60.0


def _group_sums(inverse: np.ndarray, groups: int, values: np.ndarray) -> np.ndarray:
    """Per-group sums of `values`, added in row order (counts stay exact: well below 2**53)."""
    return np.bincount(inverse, weights=values, minlength=groups).astype(values.dtype)


class _Unsupported(Exception):
    """Rows the arrays cannot represent (a window start off the minute, too many campaigns or sources)."""


class _Names:
    """Codes for a tenant's campaign (or source) names, and each code's rank in byte order (ClickHouse
    compares Strings bytewise; for UTF-8 that is Python's code point order)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        self.sorted: list[str] = []
        self.rank = np.zeros(0, np.int64)

    def codes(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(column).combine_chunks() if isinstance(column, pa.ChunkedArray) \
            else pc.dictionary_encode(column)
        added = False
        mapping = []
        for name in encoded.dictionary.to_pylist():
            code = self._codes.get(name)
            if code is None:
                if len(self.names) >= self.limit:
                    raise _Unsupported(f"more than {self.limit} distinct names")
                code = self._codes[name] = len(self.names)
                self.names.append(name)
                added = True
            mapping.append(code)
        if added:
            self.sorted = sorted(self.names)
            position = {name: i for i, name in enumerate(self.sorted)}
            self.rank = np.array([position[name] for name in self.names], np.int64)
        return np.asarray(mapping, np.int64)[encoded.indices.to_numpy(zero_copy_only=False)]

    def code(self, name: str) -> int | None:
        return self._codes.get(name)

    def bounds(self, name: str) -> tuple[int, int]:
        """Ranks [lo, hi) equal to `name` (empty where no such name): greater names rank at or above hi."""
        return bisect.bisect_left(self.sorted, name), bisect.bisect_right(self.sorted, name)


class _Windows:
    """One window kind of one tenant: unique keys in order, and the sums of each."""

    def __init__(self) -> None:
        self.key = np.zeros(0, np.int64)
        self.sums = {name: np.zeros(0, np.int64 if name in _COUNTS else np.float64) for name in _SUMS}

    def add(self, key: np.ndarray, sums: dict[str, np.ndarray]) -> None:
        """Add rows (keys may repeat, and may be new or known)."""
        unique, inverse = np.unique(key, return_inverse=True)
        delta = {name: _group_sums(inverse, len(unique), np.asarray(sums[name], self.sums[name].dtype))
                 for name in _SUMS}
        at = np.searchsorted(self.key, unique)
        known = at < len(self.key)
        known[known] = self.key[at[known]] == unique[known]
        for name in _SUMS:
            self.sums[name][at[known]] += delta[name][known]
        new = ~known
        if new.any():
            self.key = np.insert(self.key, at[new], unique[new])
            for name in _SUMS:
                self.sums[name] = np.insert(self.sums[name], at[new], delta[name][new])


class _Tenant:
    """One tenant's window sums, and the store log position they include."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.rows = 0
        self.campaigns = _Names(_MAX_CAMPAIGNS)
        self.sources = _Names(_MAX_SOURCES)
        self.windows: dict[str, _Windows] = {}

    def add(self, table: pa.Table) -> None:
        """Add KPI rows (columns of `kpi_windows`; other window kinds, such as the ledger, are skipped)."""
        kinds = table["window"]
        for kind in set(WINDOWS.values()):
            rows = table.filter(pc.equal(kinds, kind))
            if rows.num_rows == 0:
                continue
            start = rows["window_start_ms"].to_numpy()
            minute, off = np.divmod(start, _MINUTE_MS)
            if off.any() or (minute < 0).any() or (minute > _MAX_MINUTE).any():
                raise _Unsupported("a window start that is not a whole minute since 1970")
            key = (minute << _MINUTE_SHIFT) | (self.campaigns.codes(rows["campaign_id"]) << _SOURCE_BITS) \
                | self.sources.codes(rows["source"])
            windows = self.windows.setdefault(kind, _Windows())
            before = len(windows.key)
            windows.add(key, {name: rows[name].to_numpy() for name in _SUMS})
            self.rows += len(windows.key) - before

    def performance(self, q: PerformanceQuery, after: tuple[float, str, str, int] | None, limit: int) -> pa.Table:
        """The rows `_queries._performance_sql` selects, in its order, as the same columns."""
        windows = self.windows.get(WINDOWS[q.granularity])
        if windows is None:
            return _RESULT_SCHEMA.empty_table()
        lo = min(max(-(-q.span.from_ms // _MINUTE_MS), 0), _MAX_MINUTE + 1)  # first whole minute >= from
        hi = min(max(-(-q.span.to_ms // _MINUTE_MS), 0), _MAX_MINUTE + 1)
        i0, i1 = np.searchsorted(windows.key, [lo << _MINUTE_SHIFT, hi << _MINUTE_SHIFT])
        key = windows.key[i0:i1]
        sums = {name: values[i0:i1] for name, values in windows.sums.items()}
        campaign = (key >> _SOURCE_BITS) & (_MAX_CAMPAIGNS - 1)
        source = key & (_MAX_SOURCES - 1)
        keep = None
        for wanted, names, codes in ((q.campaign_id, self.campaigns, campaign), (q.source, self.sources, source)):
            if wanted is not None:
                code = names.code(wanted)
                match = codes == (-1 if code is None else code)
                keep = match if keep is None else keep & match
        if keep is not None:
            key, campaign, source = key[keep], campaign[keep], source[keep]
            sums = {name: values[keep] for name, values in sums.items()}
        if q.granularity == "total":  # one row per (campaign, source) over the whole range
            group = (campaign << _SOURCE_BITS) | source
            unique, inverse = np.unique(group, return_inverse=True)
            totals = {name: _group_sums(inverse, len(unique), values) for name, values in sums.items()}
            sums, campaign, source = totals, unique >> _SOURCE_BITS, unique & (_MAX_SOURCES - 1)
            ws = np.zeros(len(unique), np.int64)
        else:
            ws = (key >> _MINUTE_SHIFT) * _MINUTE_MS
        name = q.sort.lstrip("-")
        column = _SORT_COLUMNS[name]
        k0 = (ws if column is None else sums[column]).astype(np.float64)
        if name in _AMOUNT_KEYS:  # as the SQL: the cursor must not depend on a sum's last bits
            k0 = np.round(k0, 6)
        if q.sort.startswith("-"):
            k0 = -k0
        crank, srank = self.campaigns.rank[campaign], self.sources.rank[source]
        order = np.lexsort((ws, srank, crank, k0))
        if after is not None:
            c0, c1, c2, c3 = after
            (clo, chi), (slo, shi) = self.campaigns.bounds(c1), self.sources.bounds(c2)
            later = (k0 > c0) | ((k0 == c0) & (
                (crank >= chi) | ((crank >= clo) & (crank < chi) & (
                    (srank >= shi) | ((srank >= slo) & (srank < shi) & (ws > c3))))))
            order = order[later[order]]
        order = order[:limit]
        campaigns = np.asarray(self.campaigns.names, dtype=object)
        sources = np.asarray(self.sources.names, dtype=object)
        return pa.Table.from_arrays(
            [pa.array(campaigns[campaign[order]], pa.string()), pa.array(sources[source[order]], pa.string()),
             pa.array(ws[order]), *(pa.array(sums[n][order]) for n in _SUMS), pa.array(k0[order])],
            schema=_RESULT_SCHEMA)


class KpiReadModel:
    """Window sums of the tenants this replica serves, kept equal to `kpi_windows` through the store."""

    def __init__(self, store: Any, staleness_ms: int, max_rows: int) -> None:
        self._store = store  # async callable: (method name, *args) -> result of the StoreActor method
        self._staleness_s = staleness_ms / 1000
        self._max_rows = max_rows
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()  # least recently asked first
        self._unsupported: dict[str, float] = {}  # tenant -> when SQL took over
        self._epoch: str | None = None
        self._synced = -float("inf")  # monotonic time the last catch-up started
        self._lock = asyncio.Lock()

    async def performance(self, tenant: str, q: PerformanceQuery, after: tuple[float, str, str, int] | None,
                          limit: int) -> pa.Table | None:
        """One page as `_queries._performance_sql` returns it, or None where SQL must answer."""
        model = await self._fresh(tenant)
        return None if model is None else model.performance(q, after, limit)

    async def _fresh(self, tenant: str) -> _Tenant | None:
        if self._given_up(tenant):
            return None
        if tenant in self._tenants and time.monotonic() - self._synced <= self._staleness_s:
            self._tenants.move_to_end(tenant)
            return self._tenants[tenant]
        async with self._lock:  # one store conversation at a time; who waited finds it done
            if tenant not in self._tenants:
                if self._given_up(tenant):  # found out while this request waited
                    return None
                await self._load(tenant)
            elif time.monotonic() - self._synced > self._staleness_s:
                await self._catch_up()
                if tenant not in self._tenants and not self._given_up(tenant):  # a new epoch: reload
                    await self._load(tenant)
            if tenant in self._tenants:
                self._tenants.move_to_end(tenant)
            return self._tenants.get(tenant)

    def _given_up(self, tenant: str) -> bool:
        """Whether SQL answers this tenant for now (it did not fit, `_TOO_BIG_RETRY_S` ago at most)."""
        since = self._unsupported.get(tenant)
        if since is not None and time.monotonic() - since >= _TOO_BIG_RETRY_S:
            del self._unsupported[tenant]
            return False
        return since is not None

    async def _load(self, tenant: str) -> None:
        started = time.monotonic()
        epoch, seq, table = await self._store("kpi_snapshot", tenant)
        if epoch != self._epoch:
            self._tenants.clear()
            self._epoch = epoch
        model = _Tenant(seq)
        try:
            model.add(table)
        except _Unsupported:
            self._unsupported[tenant] = time.monotonic()
            return
        if model.rows > self._max_rows:
            self._unsupported[tenant] = time.monotonic()
            return
        self._unsupported.pop(tenant, None)
        self._tenants[tenant] = model
        self._fit_budget()
        if len(self._tenants) == 1:
            self._synced = started
        if seq > min(t.seq for t in self._tenants.values()):
            await self._catch_up()  # bring the others to the same position

    async def _catch_up(self) -> None:
        started = time.monotonic()
        since = min((t.seq for t in self._tenants.values()), default=None)
        if since is None:
            self._synced = started
            return
        epoch, seq, entries = await self._store("kpi_since", self._epoch, since)
        if entries is None:  # another epoch, or the log no longer reaches back: reload on demand
            self._tenants.clear()
            self._epoch = epoch
            self._synced = started
            return
        for tenant, model in list(self._tenants.items()):
            try:
                for position, rows in entries:
                    if position > model.seq:
                        mine = rows.filter(pc.equal(rows["tenant_id"], tenant))
                        if mine.num_rows:
                            model.add(mine)
                        model.seq = position
            except _Unsupported:
                del self._tenants[tenant]
                self._unsupported[tenant] = time.monotonic()
                continue
            model.seq = max(model.seq, seq)
        self._fit_budget()
        self._synced = started

    def _fit_budget(self) -> None:
        """Drop the least recently asked tenants until the rows held fit `api.read_model_rows`."""
        while len(self._tenants) > 1 and sum(t.rows for t in self._tenants.values()) > self._max_rows:
            self._tenants.popitem(last=False)
