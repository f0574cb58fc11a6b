"""Checks run before the platform starts anything slow, so a setting that cannot work fails in seconds with
what to change, instead of minutes later with a component's own message."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from mkt_ray.errors import MktRayError


def check_port_free(host: str, port: int) -> None:
    """MktRayError, saying what to change, if the API cannot listen on host:port (Serve itself would only
    report that the deployment failed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise MktRayError(f"cannot serve the API on {host}:{port} ({exc.strerror}): stop what listens there, "
                              "or choose another port (serve_port, MKT_SERVE_PORT)") from None


def check_ray_reachable(address: str, timeout_s: float = 5.0) -> None:
    """MktRayError if nothing answers at a Ray address (`host:port` or `ray://host:port`): `ray.init` would
    retry an unreachable one for minutes, printing only its own warnings. `auto` and `local` pass."""
    if address in ("auto", "local"):
        return
    split = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = split.hostname, split.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise MktRayError(f"ray_address {address!r} is not host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise MktRayError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it "
                          "(`ray start --head`, `ray up cluster.yaml`) or fix ray_address (MKT_RAY_ADDRESS)") from None
