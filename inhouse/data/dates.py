"""Times in people's files -> microseconds since 1970 (UTC), with python-dateutil doing the reading.

What a time column may hold, tried in this order:

* with ``time_format`` (``--time-format``, strftime codes): only that format;
* a number: epoch seconds; from 1e11 on epoch milliseconds, from 1e14 microseconds;
  10,000 to 200,000 Excel serial days (1927-2447; as seconds those would all be
  the first two days of 1970); an 8-digit number is a basic ISO date (20110530);
* ISO 8601 (``2011-05-30``, ``2011-05-30T22:31:00+02:00``, ``...Z``);
* anything python-dateutil reads as a complete date: ``May 30, 2011``,
  ``30 May 2011``, ``05/30/2011``, ``30/05/2011 22:31``, ``Mon, 30 May 2011 22:31:00 +0000``,
  ``May 30, 2011 10:31 PM EST``. Once one value is read, the strftime format
  pandas guesses for it is tried first on the next ones (the fast path).

Naive times are taken as UTC. Numeric dates like ``05/06/2011`` need the
day/month order: :class:`DayOrder` settles it from the file (a value over 12
in one place) or asks for ``--dayfirst`` / ``--monthfirst``.

    >>> p = TimeParser()
    >>> p("May 30, 2011") == p("30 May 2011") == p("2011-05-30") == p("05/30/2011") == p(40693)
    True
    >>> p("1306713600000") == p("1306713600") == p("2011-05-30T02:00:00+02:00")
    True
    >>> TimeParser(dayfirst=True)("05/06/2011") == p("2011-06-05")
    True
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from ..errors import UsageError

__all__ = ["AmbiguousDate", "DayOrder", "TimeParser", "parse_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_NUMERIC = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_MIN_S, _MAX_S = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31
_EXCEL_MIN, _EXCEL_MAX = 10_000, 200_000
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?!\d)")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DEFAULTS = (datetime(2001, 2, 3), datetime(2002, 4, 5))  # a field dateutil filled in differs between the two
_ZONES = {"UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
          "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "WET": 0, "WEST": 1, "BST": 1, "CET": 1,
          "CEST": 2, "EET": 2, "EEST": 3, "IST": 5.5, "JST": 9, "AEST": 10, "AEDT": 11}
TRIED = "ISO 8601, epoch seconds/milliseconds, Excel serial days and the dates python-dateutil reads"


class AmbiguousDate(ValueError):
    """A numeric date whose day and month could be either way round, with no order chosen."""


def day_order(s: str) -> str | None:
    """``dayfirst``/``monthfirst`` when a numeric date shows its order, ``ambiguous`` when it cannot, else None.

    >>> day_order("30/05/2011"), day_order("05/30/2011"), day_order("05/06/2011"), day_order("May 5, 2011")
    ('dayfirst', 'monthfirst', 'ambiguous', None)
    """
    m = _NUMERIC_DATE.match(s)
    if not m:
        return None
    a, b = int(m.group(1)), int(m.group(3))
    if a > 12 and b <= 12:
        return "dayfirst"
    if b > 12 and a <= 12:
        return "monthfirst"
    return "ambiguous" if a != b and a <= 12 and b <= 12 else None


class TimeParser:
    """Reads one column's values; ``dayfirst`` None until the order is known (then ambiguous dates fail)."""

    def __init__(self, time_format: str | None = None, dayfirst: bool | None = None, settled_by: str = ""):
        self.time_format, self.dayfirst, self.settled_by = time_format, dayfirst, settled_by
        self._fast: str | None = None  # strftime format guessed from the first value dateutil read

    def __call__(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            s = value.strip()
            return self._string(s) if s else None
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a time")
        if isinstance(value, (int, float)):
            return _number_us(value)
        if isinstance(value, datetime):
            return _datetime_us(value)
        if isinstance(value, date):
            return _datetime_us(datetime(value.year, value.month, value.day))
        raise ValueError(f"a {type(value).__name__} is not a time")

    def _string(self, s: str) -> int:
        if self.time_format:
            try:
                return _datetime_us(datetime.strptime(s, self.time_format))
            except ValueError:
                raise ValueError(f"{s!r} does not match --time-format {self.time_format!r}") from None
        if _NUMERIC.match(s) and not (len(s) == 8 and s.isdigit()):
            return _number_us(float(s) if any(c in s for c in ".eE") else int(s))
        try:
            return _datetime_us(datetime.fromisoformat(s))
        except ValueError:
            if _ISO_DATE.match(s):
                raise ValueError(f"{s!r} starts like ISO 8601 (YYYY-MM-DD) but is not a valid ISO date or time") from None
        self._check_order(s)
        if self._fast:
            try:
                return _datetime_us(datetime.strptime(s, self._fast))
            except ValueError:
                pass
        d = self._dateutil(s)
        self._learn_fast(s)
        return _datetime_us(d)

    def _check_order(self, s: str) -> None:
        order = day_order(s)
        if order == "ambiguous" and self.dayfirst is None:
            raise AmbiguousDate(f"{s!r} could be day/month or month/day, and the file does not settle it; "
                                "use --dayfirst or --monthfirst")
        if order and order != "ambiguous" and self.dayfirst is not None and (order == "dayfirst") != self.dayfirst:
            first = "day" if self.dayfirst else "month"
            raise ValueError(f"{s!r} is {order.replace('first', '')} first, but the column's dates are {first} "
                             f"first{' (' + self.settled_by + ')' if self.settled_by else ''}")

    def _dateutil(self, s: str) -> datetime:
        from dateutil import parser as du

        unknown: list[str] = []

        def zone(name: str | None, offset: int | None):
            if name and offset is None:
                if name.upper() in _ZONES:
                    return int(_ZONES[name.upper()] * 3600)
                unknown.append(name)
            return None

        order = "day first" if self.dayfirst else "month first"
        try:
            a, b = (du.parse(s, default=d, dayfirst=bool(self.dayfirst), tzinfos=zone) for d in _DEFAULTS)
        except (ValueError, OverflowError):
            raise ValueError(f"{s!r} is not a time: tried {TRIED} ({order}); for another form use "
                             "--time-format with strftime codes, e.g. --time-format '%d.%m.%Y %H:%M'") from None
        if unknown:
            raise ValueError(f"{s!r}: unknown time zone {unknown[0]!r}; known are {sorted(_ZONES)} and offsets "
                             "like +02:00")
        if (a.year, a.month, a.day) != (b.year, b.month, b.day):
            raise ValueError(f"{s!r} is not a complete date (year, month and day): tried {TRIED}; "
                             "use --time-format for another form")
        return a

    def _learn_fast(self, s: str) -> None:
        if self._fast is None:
            try:
                from pandas.tseries.api import guess_datetime_format

                self._fast = guess_datetime_format(s, dayfirst=bool(self.dayfirst)) or ""
            except Exception:  # a guess is only a speed-up
                self._fast = ""


class DayOrder:
    """Settles a column's day/month order from its values: the first date with a part over 12 decides.

    >>> o = DayOrder()
    >>> for row, v in enumerate(["05/06/2011", "30/05/2011"], 1): o.see(row, v)
    >>> o.dayfirst, o.settled_by
    (True, "row 2 reads '30/05/2011'")
    """

    SCAN_WITHOUT_DATES = 1000  # stop looking after this many values without a numeric date

    def __init__(self) -> None:
        self.dayfirst: bool | None = None
        self.settled_by = ""
        self.ambiguous: tuple[int, str] | None = None
        self.seen = self.numeric = 0

    def see(self, row: int, value: Any) -> None:
        self.seen += 1
        if not isinstance(value, str):
            return
        order = day_order(value)
        if order is None:
            return
        self.numeric += 1
        if order == "ambiguous":
            self.ambiguous = self.ambiguous or (row, value.strip())
        elif self.dayfirst is None:
            self.dayfirst = order == "dayfirst"
            self.settled_by = f"row {row} reads {value.strip()!r}"

    @property
    def done(self) -> bool:
        return self.dayfirst is not None or (self.numeric == 0 and self.seen >= self.SCAN_WITHOUT_DATES)

    def settle(self, values: Iterable[tuple[int, Any]], source: str, column: str) -> "DayOrder":
        """Look at ``(row, value)`` pairs until the order is known; raise UsageError when only ambiguous dates exist."""
        for row, v in values:
            self.see(row, v)
            if self.done:
                break
        if self.dayfirst is None and self.ambiguous:
            row, v = self.ambiguous
            raise UsageError(f"{source}: column {column!r} holds dates like {v!r} (row {row}) whose day and month "
                             "could be either way round, and no value in the file is over 12 to settle it.",
                             fix="Say the order: --dayfirst (30/05/2011 style) or --monthfirst (05/30/2011 style).")
        return self


def parse_time(value: Any) -> int | None:
    """Microseconds since 1970 (UTC) of one value (see the module docstring); None when empty.

    >>> parse_time("2024-01-05T10:00:00+02:00"), parse_time("1704448800"), parse_time("")
    (1704441600000000, 1704448800000000, None)
    """
    return TimeParser()(value)


def _number_us(n: int | float) -> int:
    if isinstance(n, float) and not math.isfinite(n):
        raise ValueError(f"{n!r} is not a time")
    a = abs(n)
    if _EXCEL_MIN <= n < _EXCEL_MAX:
        return _datetime_us(_EXCEL_EPOCH + timedelta(days=n))
    per_second, unit = ((1_000_000, "epoch microseconds") if a >= 1e14 else (1000, "epoch milliseconds")
                        if a >= 1e11 else (1, "epoch seconds"))
    if not _MIN_S * per_second <= n <= _MAX_S * per_second:
        raise ValueError(f"{n!r} is out of range for {unit}")
    scale = 1_000_000 // per_second
    return int(n) * scale if isinstance(n, int) or float(n).is_integer() else round(n * scale)


def _datetime_us(d: datetime) -> int:
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return (d - _EPOCH) // _US
