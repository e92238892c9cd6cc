"""`refresh-recommendations`: recompute the cached top N per user (cron)."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, emit, progress_bar


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "refresh-recommendations", help="recompute every user's cached top N (or one user's)"
    )
    parser.add_argument("--top", type=int, default=10, help="how many per user (default 10)")
    parser.add_argument("--user", help="refresh only this user (email)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.cache import refresh_recommendations
    from beacon.errors import BeaconError

    if args.top < 1:
        raise BeaconError(f"--top must be at least 1, got {args.top}")
    bar = None
    seen = 0

    def progress(done: int, total: int) -> None:
        nonlocal bar, seen
        if bar is None:
            bar = progress_bar(total, "refreshing", unit="user")
        bar.update(done - seen)
        seen = done

    try:
        summary = refresh_recommendations(top=args.top, user=args.user, progress=progress,
                                          actor=cli_actor())
    finally:
        if bar is not None:
            bar.close()
    payload = summary.to_json()

    def human(p: dict) -> str:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(p["sources"].items())) or "none"
        text = (f"refreshed {p['users']} user(s), {p['rows']} row(s) in {p['seconds']:.1f} s; "
                f"sources: {sources}")
        if p["failed"]:
            text += f"\n{len(p['failed'])} user(s) failed: " + "; ".join(
                f"{k}: {v}" for k, v in list(p["failed"].items())[:5])
        return text

    emit(args, payload, human)
    return 1 if payload["failed"] and not payload["users"] else 0
