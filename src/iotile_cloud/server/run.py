"""Running the server: in the foreground (``iotile-cloud serve``) or in a thread (tests, demo)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from iotile_cloud.server.app import create_app
from iotile_cloud.server.limits import BodyLimits
from iotile_cloud.server.security import write_private

__all__ = ["serve", "LiveServer", "ServerProcess", "self_signed_cert"]


# A request head must arrive whole within this many seconds (slow-header clients are dropped), and
# at most this many connections are served at once (more get 503 rather than exhausting descriptors).
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 512


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head.

    uvicorn times out idle keep-alive connections only after a response; a client that connects and
    then trickles its headers (slowloris) would otherwise hold its connection for ever.
    """

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        waiting = self.conn.their_state is h11.IDLE
        if waiting and self._head_deadline is None:
            # read at call time, so tests (and embedders) may shorten it
            self._head_deadline = self.loop.call_later(HEAD_TIMEOUT, self._drop)
        elif not waiting and self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _drop(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE:
            self.timeout_keep_alive_handler()


def uvicorn_options() -> dict[str, Any]:
    """Connection limits every way of running the server shares."""
    return {
        "http": GuardedH11Protocol,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,
        # Our middleware logs one line per request; uvicorn's own access log would double it.
        "access_log": False,
        "lifespan": "off",
    }


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    database_url: str | None = None,
    data_dir: Path | None = None,
    log_level: str = "info",
    limits: BodyLimits | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn finishes open requests before it exits."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(database_url, data_dir, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options())


def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for ``host`` (the ``mock_cloud`` fixture serves HTTPS with it)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class LiveServer:
    """A real server on a free loopback port, in a background thread.

    >>> with LiveServer(data_dir=tmp) as server:
    ...     Api(server.url).login(...)
    """

    def __init__(
        self, data_dir: Path, database_url: str | None = None, *, ssl: bool = False, log_level: str = "warning"
    ) -> None:
        self.data_dir = Path(data_dir)
        self.app = create_app(database_url, self.data_dir)
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted TCP-proto sockets, and
        # without it every keep-alive response waits ~40 ms for a delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        options: dict[str, Any] = {}
        if ssl:
            key, cert = self_signed_cert(self.data_dir / "tls")
            options = {"ssl_keyfile": str(key), "ssl_certfile": str(cert)}
        self.scheme = "https" if ssl else "http"
        config = uvicorn.Config(
            self.app, log_level=log_level, timeout_graceful_shutdown=5, **uvicorn_options(), **options
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=f"iotile-cloud-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        """The domain to hand to ``Api`` / ``Client`` (no ``/api/v1``)."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def engine(self) -> Any:
        return self.app.state.iotile.engine

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The local IOTile Cloud server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self.engine.dispose()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """``iotile-cloud serve`` in a child process on a free loopback port (benchmarks, crash tests).

    ``start()`` may be called again after ``kill()``: the server comes back on the same port.
    """

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "iotile_cloud.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"iotile-cloud serve did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything (what crash-safety tests need)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
