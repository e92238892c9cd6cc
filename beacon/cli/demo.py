"""`beacon demo-data`: load the synthetic event platform (deterministic for --seed and --now)."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, emit, progress_bar


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo-data",
        help="load a realistic synthetic event platform (users, events, interactions)",
        description="Generate users in six cities, events, and interactions drawn from a hidden "
        "preference; the same --seed and --now give the same rows.",
    )
    parser.add_argument("--users", type=int, default=1000, help="number of users (default 1000)")
    parser.add_argument("--events", type=int, default=500, help="number of events (default 500)")
    parser.add_argument("--days", type=int, default=60,
                        help="days of interaction history before --now (default 60)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--now", default=None,
                        help="anchor time, ISO 8601 with an offset (default: this hour, UTC)")
    parser.add_argument("--replace", action="store_true",
                        help="wipe existing users, events, interactions and models first")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.demo import load_demo_data

    with _StageBars() as bars:
        summary = load_demo_data(
            users=args.users, events=args.events, days=args.days, seed=args.seed,
            now=args.now, replace=args.replace, progress=bars.update, actor=cli_actor(),
        )
    emit(args, summary, _human)
    return 0


class _StageBars:
    """One progress bar per stage, on stderr."""

    def __init__(self):
        self.stage: str | None = None
        self.bar = None
        self.done = 0

    def update(self, done: int, total: int, stage: str) -> None:
        if stage != self.stage:
            self.close()
            unit = "users" if stage == "interactions" else "rows"
            self.stage, self.done = stage, 0
            self.bar = progress_bar(total, stage, unit=unit)
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "_StageBars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _human(summary) -> str:
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in summary.interactions_by_type.items())
    lines = [
        f"loaded {summary.users:,} users, {summary.events:,} events "
        f"({summary.upcoming_events:,} upcoming), {summary.organizers:,} organizers and "
        f"{summary.interactions:,} interactions in {summary.seconds:.1f} s "
        f"({summary.interactions_per_second:,.0f} interactions/s)",
        f"  interactions: {kinds}",
        f"  seed {summary.seed}, now {summary.now.isoformat()}, {summary.days} days of history",
    ]
    if summary.dst_days:
        lines.append(f"  DST change days in range: {', '.join(summary.dst_days)}")
    if summary.replaced:
        lines.append(f"  replaced {summary.replaced['users']:,} users, "
                     f"{summary.replaced['events']:,} events, "
                     f"{summary.replaced['interactions']:,} interactions")
    return "\n".join(lines)
