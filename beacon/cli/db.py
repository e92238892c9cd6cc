"""`beacon db upgrade`: bring any database to the schema head."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, emit


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="database schema: upgrade, current")
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    up = actions.add_parser("upgrade", help="migrate the database to the newest schema")
    add_json_flag(up)
    up.set_defaults(handler=upgrade, needs_schema=False)
    cur = actions.add_parser("current", help="show the database's schema revision")
    add_json_flag(cur)
    cur.set_defaults(handler=current, needs_schema=False)


def upgrade(args: argparse.Namespace) -> int:
    from data_access import migrate
    from data_access.db import describe_url

    before = migrate.current_revision()
    after = migrate.upgrade()
    payload = {"database": describe_url()["display"], "from": before, "to": after}
    emit(args, payload, lambda p: f"{p['database']}: schema {p['from'] or 'empty'} -> {p['to']}")
    return 0


def current(args: argparse.Namespace) -> int:
    from data_access import migrate
    from data_access.db import describe_url

    migrate.require_file()
    payload = {
        "database": describe_url()["display"],
        "current": migrate.current_revision(),
        "head": migrate.head_revision(),
    }
    emit(args, payload, lambda p: f"{p['database']}: at {p['current']}, head {p['head']}")
    return 0
