"""The ``headrace`` command line: ``headrace runners``, ``headrace version``,
``headrace checkpoints list|show PATH``, ``headrace savepoint CHECKPOINT_DIR TARGET``,
``headrace stop PID`` (stop-with-savepoint) and
``headrace kafka-dev`` (a local Kafka broker, :mod:`headrace.io.kafka.cli`)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from headrace import cli_checkpoints, cli_savepoint
from headrace.io.kafka import cli as kafka_cli


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``headrace`` console script.

    >>> main(["version"])  # doctest: +ELLIPSIS
    headrace ...
    0
    """
    parser = argparse.ArgumentParser(prog="headrace", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the installed version")
    commands.add_parser("runners", help="list the runners that --runner accepts")
    cli_checkpoints.add_parser(commands)
    cli_savepoint.add_parser(commands)
    cli_savepoint.add_stop_parser(commands)
    kafka_cli.add_command(commands)
    args = parser.parse_args(argv)
    if args.command == "checkpoints":
        return cli_checkpoints.main(args)
    if args.command == "savepoint":
        return cli_savepoint.main(args)
    if args.command == "stop":
        return cli_savepoint.stop(args)
    if args.command == kafka_cli.COMMAND:
        return kafka_cli.run(args)
    if args.command == "version":
        from headrace import __version__

        print(f"headrace {__version__}")
    elif args.command == "runners":
        from headrace.sdk.runner import available_runners

        for name in available_runners():
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
