"""What every subcommand shares: the --json convention, stderr progress, and the one stderr
line naming the database a command used."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import date, datetime
from typing import Any, Callable


def _bounded(convert: Callable[[str], Any], low: float, high: float,
             what: str) -> Callable[[str], Any]:
    """An argparse type: `convert(text)` within [low, high] (finite), else one clear line."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} from {_bound(low)} to "
                                             f"{_bound(high)}, got {text[:40]}")
        return value
    return parse


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def bounded_int(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    return _bounded(int, low, high, what)


def bounded_float(low: float, high: float, what: str = "a number") -> Callable[[str], float]:
    """nan, inf and 1e308 (for a bound below it) are refused."""
    return _bounded(float, low, high, what)


#: a database id (64-bit on Postgres)
MODEL_ID = bounded_int(1, 2**63 - 1, "a model version id")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(payload: Any) -> str:
    return json.dumps(payload, default=_default, ensure_ascii=False, indent=2)


class _DatabaseLine:
    """Each command names its database once on stderr (password hidden), before its first
    progress line or output, so that a cron log or a run in the wrong directory shows which
    database it read or changed. An error message carries it instead (still one line)."""

    def __init__(self) -> None:
        self.shown = False

    def reset(self) -> None:
        """A new command starts (tests run several in one process)."""
        self.shown = False

    def text(self) -> str | None:
        import os

        from sqlalchemy.exc import ArgumentError

        from data_access.db import describe_url

        try:
            display = describe_url()["display"]
        except (ArgumentError, ValueError, OSError):  # a malformed URL or an unusable folder:
            return None  # the command's own error says so
        if not os.environ.get("DATABASE_URL", "").strip():
            display += " (embedded default, DATABASE_URL unset)"
        return f"database {display}"

    def show(self) -> None:
        if not self.shown:
            self.shown = True
            text = self.text()
            if text:
                print(f"beacon: {text}", file=sys.stderr, flush=True)

    def error_suffix(self, message: str = "") -> str:
        """'; database …' for an error line when neither a line before nor the `message`
        itself named the database."""
        text = None if self.shown else self.text()
        self.shown = True
        if not text or text.removeprefix("database ").split(" (")[0] in message:
            return ""
        return f"; {text}"


database_line = _DatabaseLine()


def emit(args: argparse.Namespace, payload: Any, human: Callable[[Any], str] | None = None) -> None:
    """--json: exactly one JSON document on stdout. Otherwise the human rendering."""
    database_line.show()
    if getattr(args, "json", False) or human is None:
        sys.stdout.write(to_json(payload) + "\n")
    else:
        text = human(payload)
        if text:
            sys.stdout.write(text.rstrip("\n") + "\n")


def log(message: str) -> None:
    """Progress and notes go to stderr so that --json output stays clean."""
    database_line.show()
    print(message, file=sys.stderr, flush=True)


def on_terminal() -> bool:
    """stderr is a terminal (a person watching), not a pipe, a file or a cron log."""
    return sys.stderr.isatty()


class PlainProgress:
    """Progress for logs: a line at most every `interval` seconds and one at the end, never a
    carriage return. The part of tqdm's interface the commands use (n, total, update,
    set_postfix, close)."""

    def __init__(self, total: int | None, description: str, unit: str,
                 interval: float = 10.0) -> None:
        self.total, self.description, self.unit, self.interval = total, description, unit, interval
        self.n = 0
        self.postfix = ""
        self.started = self.last_line = time.monotonic()
        self.closed = False

    def update(self, count: int = 1) -> None:
        self.n += count
        if time.monotonic() - self.last_line >= self.interval:
            self._line()

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in postfix.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(done=True)

    def _line(self, done: bool = False) -> None:
        self.last_line = time.monotonic()
        count = f"{self.n:,}" if self.total is None else f"{self.n:,}/{self.total:,}"
        text = f"{self.description}: {count} {self.unit}"
        if done:
            text += f" in {self.last_line - self.started:.1f} s"
        log(f"{text}, {self.postfix}" if self.postfix else text)


def progress_bar(total: int | None, description: str, unit: str = "it"):
    """A tqdm bar on a terminal; in a pipe or a cron log, PlainProgress lines on stderr."""
    database_line.show()
    if not on_terminal():
        return PlainProgress(total, description, unit)
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.2)
