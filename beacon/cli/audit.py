"""`beacon audit [--since WHEN] [--who NAME] [--action NAME] [--limit N] [--json]`: the audit
trail, newest first. WHEN is an ISO date or time (UTC when no offset), or an age like 24h, 7d."""
from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta, timezone

from beacon.cli.common import add_json_flag, emit
from beacon.errors import BeaconError

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhd])$")


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="print the audit trail (who did what, when)")
    parser.add_argument("--since", help="from this time: 2026-12-01, 2026-12-01T08:00, 24h, 7d")
    parser.add_argument("--who", help="only this actor (an email, cli:<user>, api:<key>)")
    parser.add_argument("--action", help="only this action (train, sign_in, activate_model, …)")
    parser.add_argument("--limit", type=int, default=200, help="at most this many rows (200)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    age = _AGE.match(text.strip())
    try:
        if age:
            amount, unit = float(age.group(1)), age.group(2)
            return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
        when = datetime.fromisoformat(text.strip())
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(
            timezone.utc)
    except ValueError:
        raise BeaconError(f"--since {text!r}: expected an ISO date/time (2026-12-01, "
                          "2026-12-01T08:00+01:00) or an age (30m, 24h, 7d)") from None
    except OverflowError:
        raise BeaconError(f"--since {text!r}: out of range (a time between the years 1 and "
                          "9999 in UTC)") from None


def _human(rows: list[dict]) -> str:
    if not rows:
        return "no audit entries"
    lines = []
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        error = f"  [{r['error']}]" if r["error"] else ""
        lines.append(f"{r['at'][:19]}Z  {r['who']}  {r['action']}  {r['outcome']}"
                     f"{'  (' + params + ')' if params else ''}{error}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from data_access.audit import entries

    if args.limit < 1:
        raise BeaconError(f"--limit must be >= 1, got {args.limit}")
    rows = entries(who=args.who, action=args.action, since=parse_since(args.since),
                   limit=args.limit)
    emit(args, [r.to_dict() for r in rows], _human)
    return 0
