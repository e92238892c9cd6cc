"""Online metrics service: CTR and registration conversion with Wilson 95% intervals.

The counting and the attribution rule live in data_access/metrics.py (GROUP BY in the database),
read through the daily rollup of data_access/metrics_rollup.py when it applies; this module picks the range, adds rates and intervals, and shapes the result for the CLI and the
console's Metrics and Overview pages.

Rates, per group:
- ctr = clicks / impressions
- conversion = registrations / impressions
- click_conversion = registrations / clicks
each with `<rate>_low` / `<rate>_high`, the Wilson score interval at z = 1.96. A rate whose
denominator is zero is None (NaN in a DataFrame), as are its bounds; a rate above 1 (more clicks
than impressions in a group, possible with repeated clicks or an impression before the range)
is reported, its interval is None (not a proportion).

Ranges are half-open [start, end) in UTC; a date means midnight UTC.
"""
from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd

from beacon.errors import BeaconError
from data_access import metrics as store
from data_access import metrics_rollup as rollup

log = logging.getLogger(__name__)

CLICK_WINDOW = store.CLICK_WINDOW
REGISTRATION_WINDOW = store.REGISTRATION_WINDOW

COUNTS = ("impressions", "clicks", "registrations")
RATES = (
    # name, numerator, denominator
    ("ctr", "clicks", "impressions"),
    ("conversion", "registrations", "impressions"),
    ("click_conversion", "registrations", "clicks"),
)
NONE_LABEL = "(none)"
MAX_RANGE_DAYS = 3660  # ten years of days: by_day lists every day of the range
DEFAULT_DAYS = 30


def wilson_interval(
    successes: int | float, trials: int | float, z: float = 1.96
) -> tuple[float, float] | None:
    """The Wilson score interval for a binomial proportion successes / trials.

    None when there are no trials, or when the counts are not a proportion (negative, or more
    successes than trials). 10 of 100 at z = 1.96 gives about (0.0552, 0.1744)."""
    if trials is None or successes is None:
        return None
    if isinstance(trials, float) and math.isnan(trials):
        return None
    if isinstance(successes, float) and math.isnan(successes):
        return None
    if trials <= 0 or successes < 0 or successes > trials:
        return None
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_with_interval(successes, trials, z: float = 1.96) -> dict[str, float | None]:
    """{'rate', 'low', 'high'}: rate None when trials is zero; bounds None when not a proportion."""
    if not trials:
        return {"rate": None, "low": None, "high": None}
    interval = wilson_interval(successes, trials, z)
    low, high = interval if interval else (None, None)
    return {"rate": successes / trials, "low": low, "high": high}


def add_rates(frame: pd.DataFrame, z: float = 1.96) -> pd.DataFrame:
    """A copy of a frame of counts with ctr, conversion, click_conversion and their bounds."""
    out = frame.copy()
    for name, numerator, denominator in RATES:
        values = [
            rate_with_interval(int(s), int(t), z)
            for s, t in zip(out[numerator], out[denominator])
        ]
        for part, suffix in (("rate", ""), ("low", "_low"), ("high", "_high")):
            out[name + suffix] = pd.Series(
                [v[part] for v in values], index=out.index, dtype="float64"
            )
    return out


def _rates_dict(counts: dict[str, Any], z: float = 1.96) -> dict[str, Any]:
    result = dict(counts)
    for name, numerator, denominator in RATES:
        value = rate_with_interval(counts[numerator], counts[denominator], z)
        result[name] = value["rate"]
        result[name + "_low"] = value["low"]
        result[name + "_high"] = value["high"]
    return result


# ---- ranges -------------------------------------------------------------------------------


def _as_utc(value: date | datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise BeaconError(
                f"malformed {name} {value!r}: expected an ISO 8601 date or time, e.g. 2026-11-01"
            ) from None
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else \
                value.astimezone(timezone.utc)
        except OverflowError:
            raise BeaconError(f"{name} {value.isoformat()} is out of range (a time between the "
                              "years 1 and 9999 in UTC)") from None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise BeaconError(f"{name} must be a date or a time, not {type(value).__name__}")


def resolve_range(
    days: int | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """[start, end) in UTC. Neither given: the last `days` (default 30) days up to now. Only
    end: the `days` days before it. Only start: the `days` days from it when `days` is given,
    else from it up to now. Both: exactly those (`days` unused)."""
    days_given = days is not None
    days = DEFAULT_DAYS if days is None else days
    if isinstance(days, bool) or not isinstance(days, numbers.Integral):
        raise BeaconError(f"days must be a whole number, not {days!r}")
    days = int(days)
    if not 1 <= days <= MAX_RANGE_DAYS:
        raise BeaconError(f"days must be between 1 and {MAX_RANGE_DAYS}, not {days}")
    now_utc = _as_utc(now, "now") if now is not None else datetime.now(timezone.utc)
    end_utc = _as_utc(end, "end") if end is not None else None
    start_utc = _as_utc(start, "start") if start is not None else None
    try:
        if end_utc is None:
            end_utc = start_utc + timedelta(days=days) if start_utc and days_given else now_utc
        if start_utc is None:
            start_utc = end_utc - timedelta(days=days)
    except OverflowError:
        raise BeaconError(f"the range of {days} days runs out of the calendar: give dates "
                          "between the years 1 and 9999") from None
    if start_utc >= end_utc:
        raise BeaconError(
            f"empty date range: start {start_utc.isoformat()} is not before end "
            f"{end_utc.isoformat()} (the range is [start, end))"
        )
    if end_utc - start_utc > timedelta(days=MAX_RANGE_DAYS):
        raise BeaconError(f"date range longer than {MAX_RANGE_DAYS} days: narrow it")
    return start_utc, end_utc


# ---- results ------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN and <NA> become None, dates ISO strings."""
    columns = list(frame.columns)
    return [
        {column: _json_value(value) for column, value in zip(columns, row)}
        for row in frame.itertuples(index=False, name=None)
    ]


@dataclass(frozen=True)
class OnlineMetrics:
    """Counts and rates over [start, end). Frames have the count columns impressions, clicks,
    registrations and the rate columns of this module's docstring, after their key column:
    by_day (day: datetime.date, every UTC day touching the range, zeros included; also
    unregistrations), by_model_version (model_version, <NA> for impressions without one; then
    scope: global, user or None when this database does not store that version, and label),
    by_strategy (strategy, '(none)' for impressions without one), by_category (category,
    '(none)' for events without one; also unregistrations), by_position (position).
    Attributed groups (model version, strategy, position) count conversions by the attribution
    rule of data_access/metrics.py; the conversions no impression explains are in totals
    (unattributed_clicks, unattributed_registrations).
    funnel: stage (impression, click, registration), count, attributed, rate_from_previous,
    rate_from_first. activations: [{model_version, activated_at, status}] for chart markers.
    totals: counts, rates and bounds over the range, attribution counts and the windows."""

    start: datetime
    end: datetime
    totals: dict[str, Any]
    by_day: pd.DataFrame
    by_model_version: pd.DataFrame
    by_strategy: pd.DataFrame
    by_category: pd.DataFrame
    by_position: pd.DataFrame
    funnel: pd.DataFrame
    activations: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """One JSON-ready document (the CLI's --json)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "totals": {key: _json_value(value) for key, value in self.totals.items()},
            "by_day": frame_records(self.by_day),
            "by_model_version": frame_records(self.by_model_version),
            "by_strategy": frame_records(self.by_strategy),
            "by_category": frame_records(self.by_category),
            "by_position": frame_records(self.by_position),
            "funnel": frame_records(self.funnel),
            "activations": [
                {key: _json_value(value) for key, value in row.items()}
                for row in self.activations
            ],
        }


def _rollup(attributed: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sum the database's (model_version, strategy, position) groups over one key."""
    rows = attributed[attributed["attributed"] == 1]
    if rows.empty:
        frame = pd.DataFrame({key: pd.Series(dtype=attributed[key].dtype)})
        for column in COUNTS:
            frame[column] = pd.Series(dtype="int64")
        return frame
    frame = rows.groupby(key, dropna=False, sort=False)[list(COUNTS)].sum().reset_index()
    for column in COUNTS:
        frame[column] = frame[column].astype("int64")
    return frame


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _label_missing(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Missing keys become '(none)', listed last; the others in alphabetical order."""
    labels = [NONE_LABEL if _missing(value) else value for value in frame[key]]
    frame = frame.copy()
    frame[key] = pd.Series(labels, index=frame.index, dtype="object")
    order = sorted(range(len(labels)), key=lambda i: (labels[i] == NONE_LABEL, str(labels[i])))
    return frame.iloc[order].reset_index(drop=True)


def _sort_numeric(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values(key, na_position="last", kind="stable").reset_index(drop=True)


def _fill_days(by_day: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    counted = {row["day"]: row for row in by_day.to_dict("records")}
    columns = ("impressions", "clicks", "registrations", "unregistrations")
    return pd.DataFrame(
        {
            "day": days,
            **{c: [int(counted[d][c]) if d in counted else 0 for d in days] for c in columns},
        }
    )


def _funnel(totals: dict[str, Any]) -> pd.DataFrame:
    stages = [
        ("impression", totals["impressions"], totals["impressions"]),
        ("click", totals["clicks"], totals["attributed_clicks"]),
        ("registration", totals["registrations"], totals["attributed_registrations"]),
    ]
    first = stages[0][1]
    rows, previous = [], None
    for stage, count, attributed in stages:
        rows.append(
            {
                "stage": stage,
                "count": int(count),
                "attributed": int(attributed),
                "rate_from_previous": (count / previous) if previous else None,
                "rate_from_first": (count / first) if first else None,
            }
        )
        previous = count
    frame = pd.DataFrame(rows)
    for column in ("rate_from_previous", "rate_from_first"):
        frame[column] = frame[column].astype("float64")
    return frame


def _label_versions(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `scope` (global, user, or None for a version this database does not store, such as
    the versions named in imported or demo impressions) and a display `label`."""
    ids = [int(v) for v in frame["model_version"] if not _missing(v)]
    scopes = store.version_scopes(ids)
    out = frame.copy()
    scope, label = [], []
    for value in out["model_version"]:
        if _missing(value):
            scope.append(None)
            label.append(NONE_LABEL)
            continue
        if int(value) < 0:  # the demo data's history (beacon/demo/cities.py DEMO_VERSION_TAG)
            scope.append(None)
            label.append(f"demo history {-int(value)}")
            continue
        known = scopes.get(int(value))
        scope.append(known)
        suffix = {"global": "", "user": " · personal"}.get(known, " · not stored")
        label.append(f"v{int(value)}{suffix}")
    out.insert(1, "scope", pd.Series(scope, index=out.index, dtype="object"))
    out.insert(2, "label", pd.Series(label, index=out.index, dtype="object"))
    return out


def online_metrics(
    days: int | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    now: datetime | None = None,
    *,
    click_window: timedelta = CLICK_WINDOW,
    registration_window: timedelta = REGISTRATION_WINDOW,
) -> OnlineMetrics:
    """Online metrics over [start, end) (see resolve_range for the defaults). Raises BeaconError
    on a bad range (start not before end, days <= 0, malformed dates)."""
    start_utc, end_utc = resolve_range(days, start, end, now)
    source = rollup.reader(click_window, registration_window)
    by_day = source.counts_by_day(start_utc, end_utc)
    by_category = source.counts_by_category(start_utc, end_utc)
    attributed = source.attributed_counts(start_utc, end_utc)
    activations = store.model_activations(start_utc, end_utc)

    counts = {c: int(by_day[c].sum()) for c in (*COUNTS, "unregistrations")}
    matched = attributed[attributed["attributed"] == 1]
    totals = _rates_dict(counts)
    totals.update(
        {
            "start": start_utc,
            "end": end_utc,
            "attributed_clicks": int(matched["clicks"].sum()),
            "attributed_registrations": int(matched["registrations"].sum()),
            "unattributed_clicks": counts["clicks"] - int(matched["clicks"].sum()),
            "unattributed_registrations": counts["registrations"]
            - int(matched["registrations"].sum()),
            "click_window_hours": click_window.total_seconds() / 3600,
            "registration_window_hours": registration_window.total_seconds() / 3600,
        }
    )

    return OnlineMetrics(
        start=start_utc,
        end=end_utc,
        totals=totals,
        by_day=add_rates(_fill_days(by_day, start_utc, end_utc)),
        by_model_version=_label_versions(add_rates(
            _sort_numeric(_rollup(attributed, "model_version"), "model_version"))),
        by_strategy=add_rates(_label_missing(_rollup(attributed, "strategy"), "strategy")),
        by_category=add_rates(_label_missing(by_category, "category")),
        by_position=add_rates(_sort_numeric(_rollup(attributed, "position"), "position")),
        funnel=_funnel(totals),
        activations=activations,
    )


@dataclass(frozen=True)
class PeriodComparison:
    """The last `days` days against the `days` before. current and previous: start, end,
    counts, ctr / conversion / click_conversion with _low/_high. change: current minus previous
    for each rate (None where either is None)."""

    days: int
    current: dict[str, Any]
    previous: dict[str, Any]
    change: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        def clean(values: dict[str, Any]) -> dict[str, Any]:
            return {key: _json_value(value) for key, value in values.items()}

        return {
            "days": self.days,
            "current": clean(self.current),
            "previous": clean(self.previous),
            "change": clean(self.change),
        }


def compare_periods(days: int = 7, now: datetime | None = None) -> PeriodComparison:
    """CTR and conversion of [now - days, now) against [now - 2*days, now - days)."""
    current_start, current_end = resolve_range(days, None, None, now)
    previous_start, previous_end = current_start - timedelta(days=days), current_start
    periods = []
    reader = rollup.reader()
    for start, end in ((current_start, current_end), (previous_start, previous_end)):
        counts = reader.count_totals(start, end)
        periods.append({"start": start, "end": end, **_rates_dict(
            {c: counts[c] for c in (*COUNTS, "unregistrations")}
        )})
    current, previous = periods
    change = {}
    for name, _, _ in RATES:
        a, b = current[name], previous[name]
        change[name] = None if a is None or b is None else a - b
    return PeriodComparison(days=days, current=current, previous=previous, change=change)


def refresh_after_load(url: str | None = None) -> rollup.RefreshResult | None:
    """Bring the daily rollup up to date right after a data load has committed, so that the
    next Metrics page pays nothing. A failure here is logged, never raised: the load itself is
    done, and the next read refreshes again (or answers live)."""
    try:
        return rollup.refresh(url)
    except Exception:  # noqa: BLE001 - the committed load must not look failed
        log.warning("metrics rollup refresh after a data load failed", exc_info=True)
        return None
