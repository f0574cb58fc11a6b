"""A ClickHouse-HTTP-compatible endpoint backed by chDB, for tests and local development.

`python -m mkt_ray.warehouse.http_endpoint --port 0 --path DIR [--user U --password P] [--cert C --key K]`
serves chDB's data path DIR over ClickHouse's HTTP interface, well enough for clickhouse-connect (and so
for `ClickHouseWarehouse`): its handshake (`SELECT version(), timezone()`, `system.settings`), DDL,
`DESCRIBE`, queries in any output format, server-side `{name:Type}` parameters (`param_*`), inserts
whose data is the request body in any input format (clickhouse-connect sends Arrow or Native), query
settings as URL parameters (`insert_deduplication_token`, ...), `database`, `default_format`, basic or
`X-ClickHouse-User`/`-Key` authentication, and HTTPS. It never compresses responses and refuses
compressed request bodies: create clients with `compress=False`. Sessions are not kept (each request
runs on a fresh chDB connection to the one engine, so a `SET` lasts one request).

It prints `listening on http(s)://HOST:PORT` once the socket is bound; `EndpointProcess` starts it as a
child process (chDB allows one data path per process) and reads that line from its log.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from mkt_ray.errors import WarehouseError
from mkt_ray.warehouse._sql import quote_identifier, quote_literal

# Parameters the HTTP layer consumes; the rest of the URL parameters (except param_*) are settings.
_TRANSPORT = frozenset({
    "query", "database", "default_format", "user", "password", "session_id", "session_timeout",
    "session_check", "query_id", "quota_key", "wait_end_of_query", "client_protocol_version", "role",
    "buffer_size", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "enable_http_compression", "stacktrace", "close_session", "compress", "decompress",
})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSERT_WITH_DATA = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_AUTH_FAILED = 516


class _Refused(Exception):
    """A request the endpoint answers with an error status (ClickHouse's text and code)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], path: Path, username: str, password: str) -> None:
        import chdb  # only the serving process opens the engine

        super().__init__(address, _Handler)
        self.path = path
        self.credentials = (username, password)
        self.anchor = chdb.connect(str(path))  # keeps the engine up between requests
        version, tz = self.anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = version, tz
        self.connect = lambda: chdb.connect(str(path))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: one line per request would drown the test logs."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if urlsplit(self.path).path.rstrip("/") == "/ping":
            self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        self._serve(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._serve(self._read_body())

    def _serve(self, body: bytes) -> None:
        try:
            params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            self._authenticate(params)
            self._refuse_unsupported(params)
            payload, fmt, summary = self._run(params, body)
        except _Refused as exc:
            text = f"Code: {exc.code}. DB::Exception: {exc}\n".encode()
            self._reply(exc.status, text, {"X-ClickHouse-Exception-Code": str(exc.code)})
            return
        headers = {
            "Content-Type": "application/octet-stream",
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.server.timezone,
            "X-ClickHouse-Server-Display-Name": "mkt-ray-chdb",
            "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in summary.items()}),
        }
        self._reply(200, payload, headers)

    def _authenticate(self, params: dict[str, str]) -> None:
        user = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password")
        auth = self.headers.get("Authorization", "")
        if user is None and auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        user, password = user or "default", password or ""
        expected_user, expected_password = self.server.credentials
        if not (hmac.compare_digest(user, expected_user) and hmac.compare_digest(password, expected_password)):
            raise _Refused(403, _AUTH_FAILED, f"{user}: Authentication failed: password is incorrect, or there "
                           "is no user with such name. (AUTHENTICATION_FAILED)")

    def _refuse_unsupported(self, params: dict[str, str]) -> None:
        encoding = self.headers.get("Content-Encoding", "identity").lower()
        if encoding != "identity" or params.get("decompress") == "1" or params.get("compress") == "1":
            raise _Refused(400, 1, "this chDB endpoint does not support compression; create the client with "
                           "compress=False (SUPPORT_IS_DISABLED)")
        if self.headers.get("Content-Type", "").startswith("multipart/"):
            raise _Refused(400, 1, "this chDB endpoint does not take multipart bodies (external data or "
                           "form-encoded parameters) (SUPPORT_IS_DISABLED)")

    def _run(self, params: dict[str, str], body: bytes) -> tuple[bytes, str, dict[str, int]]:
        query = params.get("query", "")
        insert = _INSERT_WITH_DATA.match(query) if query and body else None
        if insert is None:
            try:
                text = body.decode()
            except UnicodeDecodeError as exc:
                raise _Refused(400, 27, f"the request body is not a UTF-8 query: {exc} (CANNOT_PARSE_INPUT)") from exc
            query = f"{query}\n{text}" if query and text else query or text
        if not query.strip():
            raise _Refused(400, 62, "Empty query. (SYNTAX_ERROR)")
        fmt_clause = _FORMAT_CLAUSE.search(query)
        fmt = fmt_clause.group(1) if fmt_clause else params.get("default_format", "TabSeparated")
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
        conn = self.server.connect()
        data_file: IO[bytes] | None = None
        try:
            if params.get("database"):
                conn.query(f"USE {quote_identifier(params['database'])}")
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise _Refused(400, 115, f"Unknown setting {name!r} (UNKNOWN_SETTING)")
                conn.query(f"SET {name} = {quote_literal(value)}")
            if insert is not None:  # the body is the data, in the format the INSERT names
                data_file = tempfile.NamedTemporaryFile(prefix="mkt-insert-", suffix=".data")  # noqa: SIM115
                data_file.write(body)
                data_file.flush()
                query = f"{insert.group(1)} FROM INFILE {quote_literal(data_file.name)} FORMAT {insert.group(2)}"
            result = conn.query(query, fmt, params=bound or None)
            summary = {"read_rows": result.rows_read(), "read_bytes": result.bytes_read(),
                       "written_rows": result.rows_written(), "written_bytes": result.bytes_written()}
            return result.bytes() or b"", fmt, summary
        except RuntimeError as exc:  # chdb.ChdbError: the engine's own "Code: N. DB::Exception: ..." text
            code = _ERROR_CODE.search(str(exc))
            message = re.sub(r"^Code:\s*\d+\.\s*DB::Exception:\s*", "", str(exc))
            raise _Refused(500 if code is None else 400, int(code.group(1)) if code else 1001, message) from exc
        finally:
            if data_file is not None:
                data_file.close()
            conn.close()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "text/plain; charset=UTF-8", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(host: str, port: int, path: Path, username: str = "default", password: str = "",
          cert: Path | None = None, key: Path | None = None) -> _Server:
    """Bind the endpoint (port 0 = any free port); call `serve_forever()` on the result."""
    server = _Server((host, port), Path(path).resolve(), username, password)
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mkt_ray.warehouse.http_endpoint", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port")
    parser.add_argument("--path", type=Path, required=True, help="chDB data path (created if missing)")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default=os.environ.get("MKT_ENDPOINT_PASSWORD", ""),
                        help="default: $MKT_ENDPOINT_PASSWORD or empty")
    parser.add_argument("--cert", type=Path, help="PEM certificate: serve HTTPS")
    parser.add_argument("--key", type=Path, help="PEM private key of --cert")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    server = serve(args.host, args.port, args.path, args.user, args.password, args.cert, args.key)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    scheme = "https" if args.cert else "http"
    print(f"listening on {scheme}://{args.host}:{server.server_address[1]} (chDB {server.version} at {server.path})",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class EndpointProcess:
    """The endpoint as a child process on a free loopback port (it dies with this process).

    Its output goes to `<path>.log` (beside the data folder), where `start` reads the bound address.

    >>> with EndpointProcess(tmp_path / "ch") as endpoint:
    ...     settings = WarehouseSettings(backend="clickhouse", url=endpoint.url)
    """

    def __init__(self, path: Path, username: str = "default", password: str = "",
                 cert: Path | None = None, key: Path | None = None) -> None:
        self.path, self.username, self.password, self.cert, self.key = Path(path), username, password, cert, key
        self.log_path = self.path.with_name(self.path.name + ".log")
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> EndpointProcess:
        from mkt_ray.embedded._broker import death_signal_hook

        argv = [sys.executable, "-m", "mkt_ray.warehouse.http_endpoint", "--port", "0", "--path", str(self.path),
                "--user", self.username]
        if self.cert is not None:
            argv += ["--cert", str(self.cert), "--key", str(self.key)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, "MKT_ENDPOINT_PASSWORD": self.password},
                                          preexec_fn=death_signal_hook())
        deadline = time.monotonic() + timeout_s
        while (match := re.search(r"listening on (\S+)", self.log_path.read_text())) is None:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                output = self.log_path.read_text()[-2000:].strip() or "no output"
                self.stop()
                raise WarehouseError(f"the chDB HTTP endpoint did not start (log {self.log_path}): {output}")
            time.sleep(0.05)
        self.url = match.group(1)
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM (the server finishes the requests in flight), then SIGKILL after `grace_s`."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> EndpointProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
