"""DeletionActor: carries out right-to-be-forgotten requests across every tier, off the HTTP path.

A request for an identity (`user_id:u1`, or a bare value meaning any identity field) removes the person,
that is every identity linked to it, from:
1. the raw archive's links: identities seen together on an archived event with it join the request
   (the contract's "appearing together on one event"), transitively;
2. tombstones (raw store, `_tombstones/`): written before anything is removed, so the pipeline keeps the
   person out of whatever it applies or replays from then on;
3. engine state: each ingest member forgets the person in its partitions' attribution engines (identity
   graph, touchpoints, consent), adds the identities linked there, and rewrites its checkpoints;
4. the warehouse (lightweight DELETE through the store actor): the person's attribution credits and the
   quarantined messages that name one of its identities;
5. raw Parquet, rewritten without the person's rows.
KPI windows are anonymous aggregates and stay. Every request has a row in `deletion_audit` (the identity
as a tenant-salted hash, counts per tier, status), updated as it runs.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import ray

from mkt_ray.pipeline import ATTRIBUTION, QUARANTINE
from mkt_ray.pipeline._tables import DELETION_AUDIT
from mkt_ray.rawstore import (
    forget_raw_rows,
    identity_hash,
    identity_nodes,
    linked_nodes,
    raw_key,
    save_tombstones,
)
from mkt_ray.settings import Settings

log = logging.getLogger("mkt_ray.deletion")


def deletion_actor_name(store_name: str) -> str:
    """The deletion actor of a platform is named after its store actor (the API finds it that way)."""
    return f"{store_name}-deletion"


@dataclass
class Progress:
    """One request's audit row."""

    request_id: str
    tenant_id: str
    identity_sha256: str
    status: str  # pending, running, done, failed
    requested_ms: int
    completed_ms: int | None = None
    identities: int = 0  # identity nodes of the person
    engine_identities: int = 0  # of those, removed from engine state
    attribution_rows: int = 0
    quarantine_rows: int = 0
    raw_rows: int = 0
    raw_files: int = 0
    error: str = ""
    version: int = 0


@ray.remote(num_cpus=0, max_concurrency=4, max_restarts=-1)
class DeletionActor:
    """Accepts requests at once (`submit`) and runs them one at a time on its own thread."""

    def __init__(self, settings: Settings, store_name: str, ingest_names: list[str]) -> None:
        self._settings, self._store_name, self._ingest_names = settings, store_name, ingest_names
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deletion")

    def submit(self, tenant: str, identity: str) -> dict[str, Any]:
        """Record the request (status pending) and queue it; its audit row."""
        progress = Progress(uuid.uuid4().hex, tenant, identity_hash(tenant, identity), "pending", _now_ms())
        self._record(progress)
        self._runner.submit(self._run, progress, identity)
        return asdict(progress)

    def status(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The current audit row of a request of `tenant`, None if there is none."""
        db = self._settings.warehouse.database
        table = ray.get(self._store().query_arrow.remote(
            f"SELECT * FROM {db}.{DELETION_AUDIT} FINAL WHERE tenant_id = {{tenant:String}} "
            "AND request_id = {id:String}", {"tenant": tenant, "id": request_id}))
        rows = table.to_pylist()
        return rows[0] if rows else None

    def person(self, tenant: str, identity: str) -> list[str]:
        """Every identity node of the person `identity` names in the ingest members' identity graphs (the
        query API's `journeys/{identity}` reads the person's credits with them; a deletion also follows
        the raw archive's links)."""
        nodes = identity_nodes(identity)
        linked = ray.get([member.person.remote(tenant, nodes) for member in self._ingest()])
        return sorted(set(named_nodes(identity)).union(*linked))

    def _run(self, progress: Progress, identity: str) -> None:
        progress.status = "running"
        self._record(progress)
        try:
            forget_everywhere(self._settings, self._store(), self._ingest(), progress, identity_nodes(identity))
            progress.status = "done"
        except Exception as exc:  # recorded in the audit and logged; the request can be sent again
            progress.status, progress.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("deletion request %s failed", progress.request_id)
        progress.completed_ms = _now_ms()
        self._record(progress)

    def _record(self, progress: Progress) -> None:
        progress.version += 1
        ray.get(self._store().insert_arrow.remote(DELETION_AUDIT, pa.Table.from_pylist([asdict(progress)])))

    def _store(self) -> Any:
        return ray.get_actor(self._store_name)

    def _ingest(self) -> list[Any]:
        return [ray.get_actor(name) for name in self._ingest_names]


def named_nodes(identity: str) -> list[str]:
    """What `identity` names by itself: its identity nodes and the string as given (credits written with
    a bare person key match it too)."""
    return sorted({identity, *identity_nodes(identity)})


def forget_everywhere(settings: Settings, store: Any, ingest: list[Any], progress: Progress, nodes: list[str]) -> None:
    """Steps 1-5 of the module notes for `progress.tenant_id`, counting into `progress` as they go."""
    tenant, uri, key = progress.tenant_id, settings.raw_uri, raw_key(settings.raw_store)
    person = linked_nodes(uri, tenant, nodes, key)
    save_tombstones(uri, tenant, [identity_hash(tenant, node) for node in person])
    removed = set().union(*ray.get([member.forget.remote(tenant, sorted(person)) for member in ingest]))
    progress.engine_identities = len(removed)
    if removed - person:  # linked in the engine through events the archive no longer holds
        person |= removed
        save_tombstones(uri, tenant, [identity_hash(tenant, node) for node in person])
        ray.get([member.forget.remote(tenant, sorted(person)) for member in ingest])
    progress.identities = len(person)
    db, params = settings.warehouse.database, {"tenant": tenant, "ids": sorted(person)}
    progress.attribution_rows = _delete(store, f"{db}.{ATTRIBUTION}", "person IN {ids:Array(String)}", params)
    values = sorted({node.partition(":")[2] for node in person})
    needles = {"tenant": tenant, "needles": [json.dumps(v, ensure_ascii=False) for v in values]}  # the value as a JSON string
    progress.quarantine_rows = _delete(store, f"{db}.{QUARANTINE}", "multiSearchAny(raw, {needles:Array(String)})",
                                       needles)
    progress.raw_rows, progress.raw_files = forget_raw_rows(uri, tenant, person, key)


def _delete(store: Any, table: str, condition: str, params: dict[str, Any]) -> int:
    """Count, then lightweight-DELETE, the tenant's rows matching `condition`; the count."""
    where = f"tenant_id = {{tenant:String}} AND {condition}"
    (count,), = ray.get(store.query_rows.remote(f"SELECT count() FROM {table} WHERE {where}", params))
    if count:
        ray.get(store.execute.remote(f"DELETE FROM {table} WHERE {where}", params))
    return int(count)


def _now_ms() -> int:
    return int(time.time() * 1000)


def start_deletion_actor(settings: Settings, store_name: str, ingest_names: list[str]) -> Any:
    """Start the platform's deletion actor, named after its store (`deletion_actor_name`)."""
    return DeletionActor.options(name=deletion_actor_name(store_name)).remote(settings, store_name, ingest_names)
