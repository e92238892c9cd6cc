"""`beacon import`: bring a platform's users, events and interactions in from CSV files."""
from __future__ import annotations

import argparse
from typing import Any

from beacon.cli.common import add_json_flag, emit, progress_bar


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import users, events and interactions from CSV files (all or nothing)",
        description="Validate and import CSV files (formats in DESIGN.md) in one transaction: "
        "one bad row and nothing is written. Importing the same files again changes nothing.",
    )
    parser.add_argument("--users", metavar="CSV", help="users.csv: email, name, latitude, "
                        "longitude, city, interest_tags")
    parser.add_argument("--events", metavar="CSV", help="events.csv: event_id, title, category, "
                        "tags, organizer, city, latitude, longitude, start_time, end_time, "
                        "timezone, price, capacity")
    parser.add_argument("--interactions", metavar="CSV", help="interactions.csv: email, "
                        "event_id, type, occurred_at, model_version, strategy, position")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


class _Bars:
    """One stderr progress bar per file, opened on its first report."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, kind: str, done: int, total: int | None) -> None:
        bar = self.bars.get(kind)
        if bar is None:
            for other in self.bars.values():
                other.close()
            bar = self.bars[kind] = progress_bar(total, kind, unit="rows")
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _human(payload: dict[str, Any]) -> str:
    lines = []
    for kind in ("users", "events", "interactions"):
        part = payload.get(kind)
        if part:
            lines.append(
                f"{kind}: {part['rows']} rows read from {part['file']}: {part['inserted']} "
                f"inserted, {part['updated']} updated, {part['unchanged']} unchanged"
            )
    lines.append(f"imported in {payload['seconds']:.1f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.errors import BeaconError
    from beacon.importer import import_csv

    if not (args.users or args.events or args.interactions):
        raise BeaconError("import: give at least one of --users, --events, --interactions")
    bars = _Bars()
    try:
        summary = import_csv(users=args.users, events=args.events,
                             interactions=args.interactions, progress=bars,
                             actor=cli_actor())
    finally:
        bars.close()
    emit(args, summary.to_dict(), _human)
    return 0
