"""CSV import: users.csv, events.csv, interactions.csv (docs/data-formats.md), all or nothing.

Each file is streamed row by row with the csv module and validated as it is read; valid rows go
to the database in batches inside ONE transaction (data_access.imports). The first bad row stops
the writing, validation goes on to list up to MAX_ERRORS problems, and the transaction is rolled
back: a failed import writes nothing. Every problem reads
`<file>:<line>: column <col>: expected <what>, got <value>`.
"""
from __future__ import annotations

import codecs
import csv
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from beacon.actions import Actor, audit_row, state_changing
from beacon.errors import BeaconError
from data_access.imports import (
    MAX_LENGTHS,
    EventRecord,
    ImportWriter,
    InteractionRow,
    UpsertCounts,
    UserRecord,
    import_transaction,
)
from data_access.emails import EMAIL_RE, normalize_email
from data_access.schema import INTERACTION_TYPES

MAX_ERRORS = 20
ENTITY_BATCH = 1000
INTERACTION_BATCH = 20_000
INT32_MAX = 2**31 - 1
#: a ticket price above this is a typo or garbage (and breaks the price features)
MAX_PRICE = 1_000_000.0
#: interactions may be stamped this far ahead of the importing clock (clock skew), no further
FUTURE_TOLERANCE = timedelta(minutes=10)

USERS_REQUIRED = ("email",)
USERS_OPTIONAL = ("name", "latitude", "longitude", "city", "interest_tags")
EVENTS_REQUIRED = ("event_id", "title", "start_time")
EVENTS_OPTIONAL = (
    "category", "tags", "organizer", "city", "latitude", "longitude",
    "end_time", "timezone", "price", "capacity",
)
INTERACTIONS_REQUIRED = ("email", "event_id", "type", "occurred_at")
INTERACTIONS_OPTIONAL = ("model_version", "strategy", "position")

INTEGER_RE = re.compile(r"^[+-]?\d+$")
DECIMAL_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
TIME_EXAMPLE = "2026-12-01T19:30:00+01:00"

#: progress(file kind, rows done, rows expected or None)
ProgressCallback = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class FileSummary:
    file: str
    rows: int
    inserted: int
    updated: int
    unchanged: int  # for interactions: rows already stored or repeated in the file


@dataclass(frozen=True)
class ImportSummary:
    users: FileSummary | None
    events: FileSummary | None
    interactions: FileSummary | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ErrorLog:
    """Collects the problems of one import; keeps the first MAX_ERRORS and counts the rest."""

    def __init__(self, limit: int = MAX_ERRORS):
        self.limit = limit
        self.messages: list[str] = []
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, file: str, line: int, column: str, expected: str, got: Any) -> None:
        self.count += 1
        if len(self.messages) < self.limit:
            shown = got if isinstance(got, _Shown) else _short_repr(got)
            self.messages.append(
                f"{file}:{line}: column {column}: expected {expected}, got {shown}"
            )

    def raise_if_any(self) -> None:
        if not self.count:
            return
        # The first line alone names the first problem (file, line, column), so a script or a
        # log that keeps one line keeps what was wrong; the others follow, one per line.
        first, *rest = self.messages
        more = f" (1 of {self.count} problems, the others below)" if self.count > 1 else ""
        if self.count > len(self.messages):
            rest.append(f"... and {self.count - len(self.messages)} more")
        raise BeaconError("\n".join([f"import failed, nothing was written: {first}{more}",
                                      *rest]))


class _Shown(str):
    """A description already fit to print (not a cell value to repr)."""


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    import zoneinfo

    # the system's tz directory also holds files that are no zone names
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def _is_iana_zone(name: str) -> bool:
    zones = _iana_zones()
    if zones:
        return name in zones
    import zoneinfo  # no tzdata listing on this machine: ask zoneinfo itself

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


class Row:
    """One data row: typed accessors that record a problem and return None on a bad cell."""

    def __init__(self, file: str, line: int, cells: dict[str, str], errors: ErrorLog):
        self.file, self.line, self.cells, self.errors = file, line, cells, errors
        self.ok = True

    def fail(self, column: str, expected: str, got: Any) -> None:
        self.ok = False
        self.errors.add(self.file, self.line, column, expected, got)

    def raw(self, column: str) -> str:
        return self.cells.get(column, "")

    def text(self, column: str, required: bool = False, max_len: int | None = None) -> str | None:
        value = self.raw(column)
        if not value:
            if required:
                self.fail(column, "a value (the column is required)", value)
            return None
        limit = max_len or MAX_LENGTHS.get(column)
        if limit and len(value) > limit:
            self.fail(column, f"at most {limit} characters", value)
            return None
        return value

    def email(self, column: str = "email") -> str | None:
        """The address normalized (trimmed, lowercased): one person, one account."""
        value = self.text(column, required=True)
        if value is not None and not EMAIL_RE.match(value):
            self.fail(column, "an email address like name@example.org", value)
            return None
        return normalize_email(value) if value is not None else None

    def number(self, column: str, low: float | None = None, high: float | None = None,
               what: str = "a number") -> float | None:
        value = self.raw(column)
        if not value:
            return None
        parsed = float(value) if DECIMAL_RE.match(value) else math.nan
        if not math.isfinite(parsed) or (low is not None and parsed < low) or (
            high is not None and parsed > high
        ):
            self.fail(column, what, value)
            return None
        return parsed

    def integer(self, column: str, low: int = -INT32_MAX - 1,
                what: str = "an integer") -> int | None:
        value = self.raw(column)
        if not value:
            return None
        parsed = int(value) if INTEGER_RE.match(value) else None
        if parsed is None or not low <= parsed <= INT32_MAX:
            self.fail(column, what, value)
            return None
        return parsed

    def time(self, column: str, required: bool = False) -> datetime | None:
        value = self.raw(column)
        if not value:
            if required:
                self.fail(column, f"an ISO 8601 time with an offset like {TIME_EXAMPLE}", value)
            return None
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None and parsed.utcoffset() is not None:
                return parsed.astimezone(timezone.utc)
            expected = f"an ISO 8601 time WITH an offset (Z or +01:00), like {TIME_EXAMPLE}"
        except (ValueError, OverflowError):
            expected = f"an ISO 8601 time with an offset like {TIME_EXAMPLE}"
        self.fail(column, expected, value)
        return None

    def tags(self, column: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for tag in (part.strip() for part in self.raw(column).split(";")):
            if not tag or tag in seen:
                continue
            if len(tag) > MAX_LENGTHS["tag"]:
                self.fail(column, f"tags of at most {MAX_LENGTHS['tag']} characters", tag)
                continue
            seen[tag] = None
        return tuple(seen)

    def place(self) -> tuple[float | None, float | None]:
        lat = self.number("latitude", -90, 90, "a latitude between -90 and 90")
        lon = self.number("longitude", -180, 180, "a longitude between -180 and 180")
        if self.ok and (lat is None) != (lon is None):
            missing = "longitude" if lon is None else "latitude"
            self.fail(missing, "a value when the other coordinate is given", self.raw(missing))
        return lat, lon

    def unique(self, column: str, value: str | None, seen: dict[str, int]) -> None:
        if value is None:
            return
        first = seen.setdefault(value, self.line)
        if first != self.line:
            self.fail(column, f"a value not already used on line {first}", value)


class CsvFile:
    """Streams the data rows of one CSV file after checking its header."""

    def __init__(self, path: Path, required: tuple[str, ...], optional: tuple[str, ...],
                 errors: ErrorLog):
        self.path, self.name = path, str(path)
        self.required, self.optional, self.errors = required, optional, errors
        self.columns: frozenset[str] = frozenset()
        self.header: list[str] = []

    def expected_rows(self) -> int:
        """Lines in the file less the header: a cheap total for the progress bar."""
        count, last = 0, b"\n"
        with self.path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        return max(count + (last != b"\n") - 1, 0)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, raw cells) of every non-blank data row; the header is line 1."""
        self.nul_lines: set[int] = set()
        self.undecodable: dict[int, str] = {}  # line -> why (named with its column below)
        self._record_start = 1
        self._record_line = ""  # the first line of the record being read
        with self.path.open("rb") as handle:
            # strict: a quote left open at the end of the file, or text after a closing
            # quote ("bad"trailing), is a CSV error, not a value
            reader = csv.reader(self._decoded(handle), strict=True)
            try:
                header = self._header(reader)
                if header is None:
                    return
                yield from self._data_rows(reader, header)
            except csv.Error as error:
                self._malformed(reader, error)

    def _malformed(self, reader, error: csv.Error) -> None:
        if "unexpected end of data" not in str(error):
            self.errors.add(self.name, reader.line_num, "-", "well-formed CSV",
                            _Shown(f"a CSV error ({error})"))
            return
        # a quote that never closed: name the line and the cell where it opened
        cells = next(csv.reader([self._record_line]), [])
        column = self.header[len(cells) - 1] if self.header and 0 < len(cells) <= len(
            self.header) else "-"
        self.errors.add(self.name, self._record_start, column, "a record on one line (a quote "
                        "opened on this line must close on it)", _Shown(
                            f"a quote still open at the end of the file (line {reader.line_num})"))

    def _decoded(self, handle) -> Iterator[str]:
        """The file's lines as text (UTF-8, a leading BOM dropped); a line that is not UTF-8 is
        reported with its number and read on with replacement characters."""
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if number == self._record_start:  # its line names an unclosed quote's cell
                self._record_line = raw.decode("utf-8", errors="replace")
            if b"\x00" in raw:  # no database stores NUL in text: named, never written
                self.nul_lines.add(number)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                if number == 1:
                    self.errors.add(self.name, number, "-", "UTF-8 text",
                                    _Shown(f"bytes that are not UTF-8 ({error.reason})"))
                else:
                    self.undecodable[number] = error.reason
                yield raw.decode("utf-8", errors="replace")

    def _header(self, reader) -> list[str] | None:
        raw = next(reader, None)
        header = [cell.strip().lower() for cell in raw or []]
        if not any(header):
            self.errors.add(self.name, 1, self.required[0],
                            f"a header row naming the columns {', '.join(self.required)}",
                            _Shown("an empty file"))
            return None
        duplicates = sorted({c for c in header if c and header.count(c) > 1})
        for column in duplicates:
            self.errors.add(self.name, 1, column, "each column once in the header",
                            _Shown(repr(header)))
        missing = [c for c in self.required if c not in header]
        for column in missing:
            self.errors.add(self.name, 1, column, f"a column named {column!r} in the header",
                            _Shown(repr(header)))
        if missing or duplicates:
            return None
        self.columns = frozenset(header) & frozenset(self.optional)
        self.header = header
        return header

    def _data_rows(self, reader, header: list[str]) -> Iterator[tuple[int, list[str]]]:
        line = self._record_start = reader.line_num + 1
        for cells in reader:
            if reader.line_num != line:
                # a quoted field ran over a line break: it would swallow the next records
                self._spanning(line, reader.line_num, cells)
            elif line in self.undecodable:
                column = self._column_name(cells, lambda cell: "\ufffd" in cell)
                self.errors.add(self.name, line, column, "UTF-8 text", _Shown(
                    f"bytes that are not UTF-8 ({self.undecodable[line]})"))
            elif self.nul_lines and line in self.nul_lines:
                self._nul(line, cells)
            elif any(cells) and any(c.strip() for c in cells):
                yield line, cells
            line = self._record_start = reader.line_num + 1

    def _column_name(self, cells: list[str], bad) -> str:
        index = next((i for i, cell in enumerate(cells) if bad(cell)), None)
        if index is None:
            return "-"
        return self.header[index] if index < len(self.header) else f"#{index + 1}"

    def _spanning(self, line: int, last: int, cells: list[str]) -> None:
        column = self._column_name(cells, lambda cell: "\n" in cell or "\r" in cell)
        self.errors.add(self.name, line, column, "a record on one line (a quote opened on this "
                        "line must close on it)", _Shown(f"a quoted field running on to line "
                                                          f"{last}"))

    def _nul(self, line: int, cells: list[str]) -> None:
        column = self._column_name(cells, lambda cell: "\x00" in cell)
        self.errors.add(self.name, line, column, "text without NUL bytes",
                        _Shown("a NUL byte (\\x00)"))

    def row(self, line: int, cells: list[str]) -> Row:
        """The checked view of one data row (cells stripped). Extra non-empty cells are an
        error, and so are missing ones: a short row would store its absent columns as empty,
        erasing what an update should keep."""
        cells = [c.strip() for c in cells]
        row = Row(self.name, line, dict(zip(self.header, cells)), self.errors)
        width = len(self.header)
        if len(cells) > width and any(cells[width:]):
            row.fail("-", f"{width} fields as in the header", _Shown(f"{len(cells)} fields"))
        elif len(cells) < width:
            row.fail(self.header[len(cells)], f"{width} fields as in the header",
                     _Shown(f"{len(cells)} fields"))
        return row

    def index(self, column: str) -> int | None:
        return self.header.index(column) if column in self.header else None


def _summary(file: CsvFile, rows: int, counts: UpsertCounts) -> FileSummary:
    return FileSummary(file.name, rows, counts.inserted, counts.updated, counts.unchanged)


def _add(a: UpsertCounts, b: UpsertCounts) -> UpsertCounts:
    return UpsertCounts(a.inserted + b.inserted, a.updated + b.updated, a.unchanged + b.unchanged)


class _Import:
    """One import run: the writer, the problems found, and what the files themselves define."""

    def __init__(self, writer: ImportWriter, progress: ProgressCallback | None):
        self.writer = writer
        self.errors = ErrorLog()
        self.progress = progress or (lambda kind, done, total: None)
        self.file_emails: dict[str, int] = {}
        self.file_event_ids: dict[str, int] = {}

    def _open(self, path: Path, required, optional) -> tuple[CsvFile, int]:
        file = CsvFile(path, required, optional, self.errors)
        return file, file.expected_rows()

    def _stream(self, kind: str, file: CsvFile, total: int, parse, flush, batch_size: int):
        """Parse every row; hand full batches to `flush` while no problem has been found."""
        batch: list = []
        rows = 0
        for line, cells in file.rows():
            record = parse(file, line, cells)
            rows += 1
            if record is not None and not self.errors:
                batch.append(record)
            if len(batch) >= batch_size:
                if not self.errors:
                    flush(batch)
                batch = []
            if rows % batch_size == 0:
                self.progress(kind, rows, total)
        if batch and not self.errors:
            flush(batch)
        self.progress(kind, rows, total)
        return rows

    # -- users --------------------------------------------------------------------------------

    def users(self, path: Path) -> FileSummary:
        file, total = self._open(path, USERS_REQUIRED, USERS_OPTIONAL)
        counts = [UpsertCounts()]

        def flush(batch: list[UserRecord]) -> None:
            counts[0] = _add(counts[0], self.writer.upsert_users(batch, file.columns))

        rows = self._stream("users", file, total, self._user, flush, ENTITY_BATCH)
        return _summary(file, rows, counts[0])

    def _user(self, file: CsvFile, line: int, cells: list[str]) -> UserRecord | None:
        row = file.row(line, cells)
        email = row.email()
        row.unique("email", email, self.file_emails)
        name, city = row.text("name"), row.text("city")
        lat, lon = row.place()
        tags = row.tags("interest_tags")
        if not row.ok or email is None:
            return None
        return UserRecord(email, name, lat, lon, city, tags)

    # -- events -------------------------------------------------------------------------------

    def events(self, path: Path) -> FileSummary:
        file, total = self._open(path, EVENTS_REQUIRED, EVENTS_OPTIONAL)
        counts = [UpsertCounts()]

        def flush(batch: list[EventRecord]) -> None:
            counts[0] = _add(counts[0], self.writer.upsert_events(batch, file.columns))

        rows = self._stream("events", file, total, self._event, flush, ENTITY_BATCH)
        return _summary(file, rows, counts[0])

    def _event(self, file: CsvFile, line: int, cells: list[str]) -> EventRecord | None:
        row = file.row(line, cells)
        event_id = row.text("event_id", required=True)
        row.unique("event_id", event_id, self.file_event_ids)
        title = row.text("title", required=True)
        start, end = row.time("start_time", required=True), row.time("end_time")
        if start is not None and end is not None and end <= start:
            row.fail("end_time", f"a time after start_time {row.raw('start_time')}",
                     row.raw("end_time"))
        zone = row.text("timezone") or "UTC"
        if not _is_iana_zone(zone):
            row.fail("timezone", "an IANA time zone name like Europe/Berlin", zone)
        lat, lon = row.place()
        price = row.number("price", 0, MAX_PRICE, f"a price between 0 and {MAX_PRICE:,.0f}")
        capacity = row.integer("capacity", 0, "a whole number >= 0")
        record = dict(
            category=row.text("category"), organizer=row.text("organizer"), city=row.text("city"),
            tags=row.tags("tags"),
        )
        if not row.ok or event_id is None or title is None or start is None:
            return None
        return EventRecord(event_id, title, start, latitude=lat, longitude=lon, end_time=end,
                           timezone=zone, price=price, capacity=capacity, **record)

    # -- interactions -------------------------------------------------------------------------

    def interactions(self, path: Path) -> FileSummary:
        file, total = self._open(path, INTERACTIONS_REQUIRED, INTERACTIONS_OPTIONAL)
        self.user_ids, self.event_ids = self.writer.user_ids(), self.writer.event_ids()
        self.now = datetime.now(timezone.utc)
        self.latest_allowed = self.now + FUTURE_TOLERANCE
        self._fast: _FastInteractions | None = None  # built once the header has been read
        rows = self._stream("interactions", file, total, self._interaction,
                            self.writer.add_interactions, INTERACTION_BATCH)
        inserted = 0 if self.errors else self.writer.finish_interactions()
        return FileSummary(file.name, rows, inserted, 0, rows - inserted)

    def _reference(self, row: Row, column: str, known: dict[str, int], in_file: dict[str, int],
                   what: str) -> int | None:
        value = row.text(column, required=True)
        if value is None:
            return None
        if column == "email":
            value = normalize_email(value)
        found = known.get(value)
        if found is None and value not in in_file:
            row.fail(column, what, value)
        return found

    def _interaction(self, file: CsvFile, line: int, cells: list[str]) -> InteractionRow | None:
        if self._fast is None:
            self._fast = _FastInteractions(file, self.user_ids, self.event_ids,
                                           self.latest_allowed)
        fast = self._fast(cells)
        if fast is not None:
            return fast
        row = file.row(line, cells)  # the checked path: it names what is wrong
        user = self._reference(row, "email", self.user_ids, self.file_emails,
                               "the email of a user in the users file or the database")
        event = self._reference(row, "event_id", self.event_ids, self.file_event_ids,
                                "the event_id of an event in the events file or the database")
        kind = row.raw("type").lower()
        if kind not in INTERACTION_TYPES:
            row.fail("type", f"one of {', '.join(INTERACTION_TYPES)}", row.raw("type"))
        occurred = row.time("occurred_at", required=True)
        if occurred is not None and occurred > self.latest_allowed:
            row.fail("occurred_at", f"a time not in the future (now is "
                     f"{self.now:%Y-%m-%dT%H:%M:%SZ})", row.raw("occurred_at"))
            occurred = None
        version = row.integer("model_version")
        strategy = row.text("strategy")
        position = row.integer("position", 0, "a whole number >= 0")
        if not row.ok or user is None or event is None or occurred is None:
            return None
        return InteractionRow(user, event, kind, occurred, version, strategy, position)


class _FastInteractions:
    """Accepts the common, plainly valid interaction row without building a Row; anything else
    (None) goes through the checked path, which accepts or names the problem."""

    def __init__(self, file: CsvFile, user_ids: dict[str, int], event_ids: dict[str, int],
                 latest_allowed: datetime):
        self.width = len(file.header)
        self.latest_allowed = latest_allowed
        self.email, self.event = file.index("email"), file.index("event_id")
        self.type, self.occurred = file.index("type"), file.index("occurred_at")
        self.version, self.position = file.index("model_version"), file.index("position")
        self.strategy = file.index("strategy")
        self.user_ids, self.event_ids = user_ids, event_ids
        self.types = frozenset(INTERACTION_TYPES)

    def __call__(self, cells: list[str]) -> InteractionRow | None:
        if len(cells) != self.width:
            return None
        user = self.user_ids.get(cells[self.email].strip().lower())
        event = self.event_ids.get(cells[self.event].strip())
        kind = cells[self.type].strip().lower()
        if user is None or event is None or kind not in self.types:
            return None
        try:
            occurred = datetime.fromisoformat(cells[self.occurred].strip())
            if occurred.tzinfo is None or occurred.utcoffset() is None:
                return None
            occurred = occurred.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            return None
        if occurred > self.latest_allowed:
            return None
        version, position = _cell(cells, self.version), _cell(cells, self.position)
        strategy = _cell(cells, self.strategy)
        if not (_plain_count(version) and _plain_count(position)) or (
            len(strategy) > MAX_LENGTHS["strategy"]
        ):
            return None
        return InteractionRow(user, event, kind, occurred, int(version) if version else None,
                              strategy or None, int(position) if position else None)


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None else ""


def _plain_count(value: str) -> bool:
    """Empty, or ASCII digits that fit a 32-bit integer."""
    return not value or (value.isascii() and value.isdigit() and len(value) <= 9)


def _paths(users, events, interactions) -> dict[str, Path]:
    given = {"users": users, "events": events, "interactions": interactions}
    paths = {kind: Path(p) for kind, p in given.items() if p is not None}
    if not paths:
        raise BeaconError("nothing to import: give at least one of --users, --events, "
                          "--interactions")
    for kind, path in paths.items():
        if not path.is_file():
            raise BeaconError(f"{path}: expected a readable {kind} CSV file, got no such file")
        try:
            path.open("rb").close()
        except OSError as error:
            raise BeaconError(f"{path}: expected a readable {kind} CSV file, "
                              f"got {error.strerror or error}") from None
    return paths


@state_changing("import_csv", needs="ingest")
def import_csv(
    users: str | Path | None = None,
    events: str | Path | None = None,
    interactions: str | Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    actor: Actor,
) -> ImportSummary:
    """Validate and import the given CSV files in one transaction; all or nothing.

    Raises BeaconError listing up to MAX_ERRORS problems (and nothing is written) when any row
    is bad. Importing the same files again inserts and updates nothing.
    """
    paths = _paths(users, events, interactions)
    started = time.perf_counter()
    results: dict[str, FileSummary] = {}
    with import_transaction(audit=audit_row()) as writer:
        run = _Import(writer, progress)
        for kind in ("users", "events", "interactions"):
            if kind in paths:
                results[kind] = getattr(run, kind)(paths[kind])
        run.errors.raise_if_any()  # inside the transaction: raising rolls everything back
    seconds = round(time.perf_counter() - started, 3)
    if "interactions" in paths or "events" in paths:
        from beacon.metrics import refresh_after_load
        refresh_after_load()
    return ImportSummary(
        results.get("users"), results.get("events"), results.get("interactions"), seconds,
    )
