"""`recommend EMAIL` and `debug-filter EMAIL`: the same filters, the same code path."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, bounded_int, emit

HUMAN_DEBUG_ROWS = 200


def _filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", help="the user's email")
    parser.add_argument("--lat", help="latitude of the point to measure distance from")
    parser.add_argument("--lon", help="longitude of that point")
    parser.add_argument("--max-km", dest="max_km",
                        help="only events within this many km (from --lat/--lon, else the user's home)")
    parser.add_argument("--dates", help="only these local dates, e.g. 2026-12-01,2026-12-02")
    parser.add_argument("--start", help="daily window start in the event's local time, e.g. 18:00")
    parser.add_argument("--end", help="daily window end, e.g. 23:00 (before --start: crosses midnight)")
    parser.add_argument("--reject", help="event ids to leave out, e.g. evt-1,evt-2")
    parser.add_argument("--category", help="only these categories, e.g. music,theatre")
    # the names live in beacon.recommend.STRATEGIES; importing it here would slow every --help
    parser.add_argument("--strategy", default="beacon",
                        help="how to score the events that pass: beacon (the model, default), "
                             "popularity or content")
    add_json_flag(parser)


def register(subparsers) -> None:
    rec = subparsers.add_parser("recommend", help="the top events for a user, with reasons")
    _filter_flags(rec)
    rec.add_argument("--top", type=bounded_int(1, 1000), default=10, help="how many (default 10)")
    rec.set_defaults(handler=run_recommend)
    dbg = subparsers.add_parser(
        "debug-filter", help="every candidate event with pass/fail and the reason per filter stage"
    )
    _filter_flags(dbg)
    dbg.set_defaults(handler=run_debug_filter)


def _params(args: argparse.Namespace):
    from beacon.filters import FilterParams

    return FilterParams.parse(
        lat=args.lat, lon=args.lon, max_km=args.max_km, dates=args.dates,
        start=args.start, end=args.end, reject=args.reject, category=args.category,
    )


def _funnel(stages: list[dict]) -> str:
    parts = []
    for stage in stages:
        if stage.get("enabled", True):
            parts.append(f"{stage['name']} {stage['remaining']}")
    return " -> ".join(parts)


def _table(headers: list[str], rows: list[list[str]], widths: dict[int, int] | None = None) -> str:
    widths = widths or {}
    cells = [[str(c) for c in row] for row in rows]
    for row in cells:
        for k, limit in widths.items():
            if len(row[k]) > limit:
                row[k] = row[k][: limit - 1] + "…"
    size = [max([len(h)] + [len(r[k]) for r in cells]) for k, h in enumerate(headers)]
    line = lambda row: "  ".join(c.ljust(size[k]) for k, c in enumerate(row)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * s for s in size])] + [line(r) for r in cells])


def _when(iso: str | None, zone: str | None = None) -> str:
    if not iso:
        return ""
    from datetime import datetime

    moment = datetime.fromisoformat(iso)
    return f"{moment:%a %Y-%m-%d %H:%M} {zone or moment.tzname() or ''}".rstrip()


def _km(value) -> str:
    return "" if value is None else f"{value:.1f} km"


def _recommend_text(payload: dict) -> str:
    head = (
        f"{payload['user']}: {len(payload['recommendations'])} recommendation(s), "
        f"strategy {payload['strategy']}, source {payload['source']}"
        + (f", model v{payload['model_version']}" if payload["model_version"] is not None else "")
    )
    lines = [head, f"funnel: {_funnel(payload['stages'])}"]
    if payload["unknown_rejects"]:
        lines.append("ignored unknown --reject ids: " + ", ".join(payload["unknown_rejects"]))
    if not payload["recommendations"]:
        lines.append("no event passes the filters (try debug-filter with the same flags)")
        return "\n".join(lines)
    rows = [
        [r["rank"], f"{r['score']:.3f}", r["event_id"], r["title"], _when(r["local_start"], r.get("timezone")),
         _km(r["distance_km"]), r["source"], r["reason"]]
        for r in payload["recommendations"]
    ]
    lines.append(_table(["#", "score", "event", "title", "starts (local)", "distance", "source",
                         "reason"], rows, {3: 40, 7: 80}))
    return "\n".join(lines)


def _debug_text(payload: dict) -> str:
    lines = [f"{payload['user']}: strategy {payload['strategy']}, source {payload['source']}"
             + (f", model v{payload['model_version']}" if payload["model_version"] is not None else "")]
    lines.append("stages:")
    for stage in payload["stages"]:
        note = "" if stage.get("enabled", True) else "  (not asked)"
        lines.append(f"  {stage['name']:<20} {stage['remaining']:>8}{note}")
    if payload["unknown_rejects"]:
        lines.append("ignored unknown --reject ids: " + ", ".join(payload["unknown_rejects"]))
    # passed first (by rank), then the near misses: those that failed at the latest stage
    order = {stage["name"]: k for k, stage in enumerate(payload["stages"])}
    events = sorted(payload["events"], key=lambda e: (
        not e["passed"], e["rank"] or 0, -order.get(e["failed_stage"], 0)))
    shown = events[:HUMAN_DEBUG_ROWS]
    rows = [
        [e["event_id"], "pass" if e["passed"] else "FAIL", e["rank"] or "",
         e["failed_stage"] or "", e["reason"], _when(e["local_start"], e.get("timezone")), _km(e["distance_km"]),
         e["title"]]
        for e in shown
    ]
    if rows:
        lines.append(_table(["event", "result", "rank", "failed stage", "reason", "starts (local)",
                             "distance", "title"], rows, {4: 60, 7: 40}))
    else:
        lines.append("no candidate events")
    if len(events) > len(shown):
        lines.append(f"… {len(events) - len(shown)} more (use --json for all)")
    return "\n".join(lines)


def run_recommend(args: argparse.Namespace) -> int:
    from beacon.recommend import recommend

    result = recommend(args.email, _params(args), top=args.top, strategy=args.strategy)
    emit(args, result.to_json(), _recommend_text)
    return 0


def run_debug_filter(args: argparse.Namespace) -> int:
    from beacon.recommend import debug_filter

    result = debug_filter(args.email, _params(args), strategy=args.strategy)
    emit(args, result.to_json(), _debug_text)
    return 0
