"""`python -m beacon`: the cron and scripting front. Each subcommand lives in its own module
with `register(subparsers)`; handlers import what they need lazily so `--help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from beacon.cli.common import database_line
from beacon.errors import BeaconError

COMMAND_MODULES = (
    "db", "demo", "importer", "train", "models", "recommend",
    "refresh", "evaluate", "metrics", "operators", "audit", "serve", "api_keys",
    "training_settings",
)


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line like every other error (`beacon: error: ...`, which scripts and
    cron mail grep for), with where to read more, and no usage block."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"beacon: error: {message} (`{self.prog} --help` lists the "
                         "arguments)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m beacon",
        description="Beacon: event recommendations. DATABASE_URL selects the database "
        "(unset: an SQLite file under ./data/).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"beacon.cli.{name}").register(subparsers)
    return parser


class _OneLine(logging.Formatter):
    """stderr gets the message; the traceback goes to the log file only."""

    def format(self, record: logging.LogRecord) -> str:
        return f"beacon: {record.levelname.lower()}: {record.getMessage()}".splitlines()[0]


def _configure_logging() -> None:
    from beacon.failures import log_file

    root = logging.getLogger()
    if getattr(root, "_beacon_cli", False):
        return
    root.setLevel(logging.INFO)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(_OneLine())
    root.addHandler(stderr)
    try:
        to_file = logging.FileHandler(log_file(), encoding="utf-8", delay=True)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s "
                                               "%(levelname)s %(message)s"))
        root.addHandler(to_file)
    except OSError:
        pass
    root._beacon_cli = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging()
    database_line.reset()
    try:
        if getattr(args, "needs_schema", True):
            from data_access.migrate import ensure_schema

            ensure_schema(create=getattr(args, "creates_database", False))
        code = int(args.handler(args) or 0)
        database_line.show()
        return code
    except KeyboardInterrupt:
        print("beacon: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure is one line; bugs are logged
        return report(error, " ".join(sys.argv[1:] if argv is None else argv))


def report(error: BaseException, context: str) -> int:
    """One line on stderr. Exit 2 for what the person typed or pointed at (bad input, a bad
    or missing database), 1 for the environment (unreachable, busy, old schema) and bugs."""
    from beacon.failures import one_line
    from data_access.db import DatabaseMissing, DatabaseUrlError

    message = one_line(error, context=f"python -m beacon {context}")
    print(f"beacon: error: {message}{database_line.error_suffix(message)}", file=sys.stderr)
    return 2 if isinstance(error, (BeaconError, DatabaseUrlError, DatabaseMissing)) else 1
