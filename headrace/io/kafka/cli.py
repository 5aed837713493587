"""``headrace kafka-dev``: run a local Kafka-protocol broker until Ctrl-C.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="headrace")
>>> add_command(parser.add_subparsers(dest="command"))
>>> parser.parse_args(["kafka-dev", "--port", "9092"]).port
9092
"""
from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

COMMAND = "kafka-dev"


def add_command(commands: Any) -> None:
    """Register ``kafka-dev`` on the ``headrace`` command's subparsers."""
    parser = commands.add_parser(COMMAND, help="run a local in-memory Kafka broker (Tansu) "
                                               "until Ctrl-C; prints its address")
    parser.add_argument("--port", type=int, default=None,
                        help="loopback port to listen on (default: a free one)")
    parser.add_argument("--startup-timeout", type=float, default=10.0,
                        help="seconds to wait for the broker to accept connections")


def run(args: argparse.Namespace) -> int:
    """Start the broker, print ``bootstrap_servers``, wait for Ctrl-C or SIGTERM, stop it."""
    from headrace.io.kafka.dev import KafkaDevBroker

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with KafkaDevBroker(args.port, args.startup_timeout) as broker:
            print(f"Kafka broker (Tansu, in memory) listening; bootstrap_servers="
                  f"{broker.bootstrap_servers}", flush=True)
            print("Press Ctrl-C to stop it (all its data is lost).", flush=True)
            while not stop.wait(0.5):
                if broker.process is None or broker.process.poll() is not None:
                    print("The broker exited.", flush=True)
                    return 1
    except KeyboardInterrupt:  # Ctrl-C may come at any point; the with-block stopped it
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
