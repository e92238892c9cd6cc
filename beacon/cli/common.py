"""What every subcommand shares: the --json convention and stderr progress."""
from __future__ import annotations

import argparse
import json
import math
import sys
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


def emit(args: argparse.Namespace, payload: Any, human: Callable[[Any], str] | None = None) -> None:
    """--json: exactly one JSON document on stdout. Otherwise the human rendering."""
    if getattr(args, "json", False) or human is None:
        sys.stdout.write(to_json(payload) + "\n")
    else:
        text = human(payload)
        if text:
            sys.stdout.write(text.rstrip("\n") + "\n")


def log(message: str) -> None:
    """Progress and notes go to stderr so that --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


def progress_bar(total: int | None, description: str, unit: str = "it"):
    """A tqdm bar on a terminal; on a pipe or in cron, a few plain lines on stderr instead."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=False,
        dynamic_ncols=interactive,
        mininterval=0.2 if interactive else 5.0,
        ascii=not interactive,
    )
