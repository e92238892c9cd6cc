"""`beacon metrics [--days 30] [--start DATE] [--end DATE] [--json]`: online CTR and conversion."""
from __future__ import annotations

import argparse
import math
from typing import Any

from beacon.cli.common import add_json_flag, emit


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="online metrics: CTR and registration conversion per day, model version, "
        "strategy, category and position",
        description="Counts impressions, clicks and registrations over [start, end) in UTC and "
        "reports CTR (clicks/impressions) and conversion (registrations/impressions and "
        "/clicks) with Wilson 95% intervals. Clicks and registrations are attributed to the "
        "most recent impression of the same user and event (within 24 h for a click, 7 days "
        "for a registration).",
    )
    parser.add_argument(
        "--days", type=int, default=None,
        help="length of the range in days: the days before --end (or now), or from --start "
        "(without --days, --start alone runs up to now); default 30",
    )
    parser.add_argument("--start", help="first day or time, ISO 8601 (inclusive; UTC if no offset)")
    parser.add_argument(
        "--end", help="end day or time, ISO 8601 (exclusive; default now): --end 2026-11-08 "
        "stops at the start of that day",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from beacon.metrics import online_metrics

    result = online_metrics(days=args.days, start=args.start, end=args.end)
    emit(args, result.as_dict(), render)
    return 0


# ---- human output ---------------------------------------------------------------------------


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%"


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None:
        return ""
    return f"[{100 * low:.1f}-{100 * high:.1f}]"


def _table(rows: list[dict[str, Any]], key: str, title: str) -> str:
    header = (title, "impr", "clicks", "regs", "CTR", "95% CI", "conv", "95% CI", "regs/click")
    lines = [header]
    for row in rows:
        label = row[key]
        lines.append((
            "(none)" if label is None else str(label),
            str(row["impressions"]),
            str(row["clicks"]),
            str(row["registrations"]),
            _percent(row["ctr"]),
            _interval(row["ctr_low"], row["ctr_high"]),
            _percent(row["conversion"]),
            _interval(row["conversion_low"], row["conversion_high"]),
            _percent(row["click_conversion"]),
        ))
    if len(lines) == 1:
        return f"{title}: no data"
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for number, line in enumerate(lines):
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ]
        out.append("  ".join(cells).rstrip())
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def render(document: dict[str, Any]) -> str:
    totals = document["totals"]
    parts = [
        f"Online metrics {document['start']} -> {document['end']} (end excluded)",
        _table([{"total": "all", **totals}], "total", "total"),
        f"attributed: {totals['attributed_clicks']} of {totals['clicks']} clicks "
        f"(window {totals['click_window_hours']:g} h), {totals['attributed_registrations']} of "
        f"{totals['registrations']} registrations (window "
        f"{totals['registration_window_hours'] / 24:g} days); "
        f"unregistrations: {totals['unregistrations']}",
        "funnel: " + " -> ".join(
            f"{row['stage']} {row['count']}"
            + (f" ({_percent(row['rate_from_previous'])})" if row["rate_from_previous"] is not None
               else "")
            for row in document["funnel"]
        ),
    ]
    if document["activations"]:
        parts.append("model activations: " + ", ".join(
            f"v{row['model_version']} at {row['activated_at']}" for row in document["activations"]
        ))
    for key, title in (
        ("by_day", "day"),
        ("by_model_version", "model_version"),
        ("by_strategy", "strategy"),
        ("by_category", "category"),
        ("by_position", "position"),
    ):
        parts.append(_table(document[key], title, title))
    return "\n\n".join(parts)
