"""`python -m beacon`: the cron and scripting front. Each subcommand lives in its own module
with `register(subparsers)`; handlers import what they need lazily so `--help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import sys

from beacon.errors import BeaconError

COMMAND_MODULES = (
    "db", "demo", "importer", "train", "models", "recommend",
    "refresh", "evaluate", "metrics", "operators", "audit", "serve", "api_keys",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beacon",
        description="Beacon: event recommendations. DATABASE_URL selects the database "
        "(unset: an SQLite file under ./data/).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"beacon.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "needs_schema", True):
            from data_access.migrate import ensure_schema

            ensure_schema()
        return int(args.handler(args) or 0)
    except BeaconError as error:
        print(f"beacon: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("beacon: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - schema and connection problems get one line too
        message = _environment_problem(error)
        if message is None:
            raise
        print(f"beacon: error: {message}", file=sys.stderr)
        return 1


def _environment_problem(error: Exception) -> str | None:
    """A one-line message for a database that is unreachable or at the wrong schema."""
    from sqlalchemy.exc import OperationalError

    from data_access.db import describe_url
    from data_access.migrate import SchemaOutOfDate

    if isinstance(error, SchemaOutOfDate):
        return str(error)
    if isinstance(error, OperationalError):
        detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return f"cannot use the database {describe_url()['display']}: {detail}"
    return None
