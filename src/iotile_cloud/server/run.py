"""Running the server: in the foreground (``iotile-cloud serve``) or in a thread (tests, demo)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from iotile_cloud.server import db
from iotile_cloud.server.app import DATABASE_FILE, create_app
from iotile_cloud.server.limits import BodyLimits
from iotile_cloud.server.security import load_or_create_secret, write_private

__all__ = ["serve", "prepare", "Supervisor", "LiveServer", "ServerProcess", "self_signed_cert"]


# A request head must arrive whole within this many seconds (slow-header clients are dropped), and
# at most this many connections are served at once (more get 503 rather than exhausting descriptors).
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 512
# An answer the client stops taking is dropped after this many seconds. Whatever is not yet sent
# waits in the connection's write buffer (a whole 5 MiB page, or a download's next piece, which also
# holds a database transaction): 511 unread pages held every connection the server admits and
# +1 GiB; 24 unread downloads exhausted the database pool.
SEND_STALL_TIMEOUT = 30.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head, and on each answer the client
    stops reading.

    uvicorn times out idle keep-alive connections only after a response; a client that connects and
    then trickles its headers (slowloris) would otherwise hold its connection for ever. And it never
    gives up on a client that does not read: the transport pauses writing above its high-water mark
    and waits for ever, holding the unsent answer (and a streamed answer's generator) meanwhile.
    """

    _head_deadline: asyncio.TimerHandle | None = None
    _send_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        for deadline in (self._head_deadline, self._send_deadline):
            if deadline is not None:
                deadline.cancel()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:  # read at call time, so tests may shorten it
            self._send_deadline = self.loop.call_later(SEND_STALL_TIMEOUT, self._drop_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _drop_stalled(self) -> None:
        """The client took nothing for SEND_STALL_TIMEOUT seconds: drop the connection and its unsent
        answer (uvicorn then reports a disconnect, which ends a streamed answer and its transaction)."""
        self._send_deadline = None
        self.transport.abort()

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


def uvicorn_options(trusted_proxies: str | None = None) -> dict[str, Any]:
    """Connection limits every way of running the server shares.

    X-Forwarded-For/-Proto are believed only from ``trusted_proxies`` (addresses, comma separated):
    by default from nobody, since uvicorn's default (127.0.0.1) would let any client on this machine
    claim another address and dodge the per-address login limit."""
    return {
        "proxy_headers": trusted_proxies is not None,
        "forwarded_allow_ips": trusted_proxies or "",
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
    workers: int = 1,
    trusted_proxies: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; open requests are finished before the server exits.

    With ``workers`` > 1, that many processes accept on one listening socket (the kernel spreads
    the connections) over the same database. They share nothing in memory: the schema is migrated
    and the JWT secret made here, once, before any worker starts.
    """
    _configure_logging(log_level)
    from iotile_cloud.server.app import default_data_dir

    folder = Path(data_dir) if data_dir else default_data_dir()
    prepare(database_url, folder)
    options = WorkerOptions(database_url, folder, log_level, limits, trusted_proxies)
    sock = listening_socket(host, port)
    if workers <= 1:
        _run_worker(options, sock)
        return
    log.info("Serving http://%s:%d with %d workers", host, sock.getsockname()[1], workers)
    Supervisor(workers, options, sock).run()


log = logging.getLogger("iotile_cloud.server")


def _configure_logging(log_level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    # Alembic announces its context on every start; only its warnings matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


def prepare(database_url: str | None, data_dir: Path) -> None:
    """What must happen once per deployment, not once per worker: migrations, the JWT secret."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = db.make_engine(database_url or db.sqlite_url(data_dir / DATABASE_FILE))
    try:
        db.migrate(engine)
    finally:
        engine.dispose()
    load_or_create_secret(data_dir)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket every worker accepts on.

    proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted TCP-proto sockets, and
    without it every keep-alive response waits ~40 ms for a delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class WorkerOptions:
    database_url: str | None
    data_dir: Path
    log_level: str
    limits: BodyLimits | None = None
    trusted_proxies: str | None = None


def _run_worker(options: WorkerOptions, sock: socket.socket) -> None:
    """One server process: its own app and connection pool over the shared database."""
    _configure_logging(options.log_level)
    app = create_app(options.database_url, options.data_dir, migrate=False, limits=options.limits)
    # The lifespan's shutdown step writes the worker's pending counts (LiveServer does it in stop()).
    settings = {**uvicorn_options(options.trusted_proxies), "lifespan": "on"}
    config = uvicorn.Config(app, log_level=options.log_level, timeout_graceful_shutdown=30, **settings)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Starts ``count`` worker processes, replaces any that die, and stops them all on SIGTERM/SIGINT.

    Stopping is graceful: each worker gets SIGTERM, finishes its open requests (uvicorn), writes its
    pending counts and exits; a worker still running after ``stop_timeout`` seconds is killed.
    """

    def __init__(self, count: int, options: WorkerOptions, sock: socket.socket, stop_timeout: float = 40) -> None:
        self.count = count
        self.options = options
        self.sock = sock
        self.stop_timeout = stop_timeout
        self._stop = threading.Event()
        # spawn: a fresh interpreter per worker, nothing inherited but the socket and the options.
        self._context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []

    def _start_one(self) -> BaseProcess:
        process = self._context.Process(target=_run_worker, args=(self.options, self.sock), name="iotile-cloud-worker")
        process.start()
        return process

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        self.processes = [self._start_one() for _ in range(self.count)]
        failures: list[float] = []
        while not self._stop.wait(0.5):
            for index, process in enumerate(self.processes):
                if process.is_alive():
                    continue
                log.warning("Worker %s exited with code %s; starting another", process.pid, process.exitcode)
                now = time.monotonic()
                failures = [t for t in failures if now - t < 60] + [now]
                if len(failures) > 3 * self.count:  # crashing on start: restarting will not help
                    log.error("Workers keep exiting; stopping")
                    self._stop.set()
                    break
                self.processes[index] = self._start_one()
        self.stop()

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self.sock.close()


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
        self,
        data_dir: Path,
        database_url: str | None = None,
        *,
        ssl: bool = False,
        log_level: str = "warning",
        fixed_tokens: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.app = create_app(database_url, self.data_dir, fixed_tokens=fixed_tokens)
        self._sock = listening_socket("127.0.0.1", 0)
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
        self.app.state.iotile.compactor.start()  # what the lifespan does under `serve`
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
        self.app.state.iotile.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """``iotile-cloud serve`` in a child process on a free loopback port (benchmarks, crash tests).

    ``start()`` may be called again after ``kill()``: the server comes back on the same port.
    ``stop()`` is graceful (SIGTERM); with ``--workers`` the supervisor then stops its workers, while
    ``kill()`` would leave them running, so crash tests use a single process.
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
        return self.launch().wait_ready(timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting (several servers can then start at the same moment)."""
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
        return self

    def wait_ready(self, timeout: float = 30) -> ServerProcess:
        """Until the port accepts connections (with ``--workers``, the parent binds it before the workers run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process is not None and self.process.poll() is not None:
                    break
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
            self.process.wait(timeout=60)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
