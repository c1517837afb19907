"""A CronJob's schedule, checked by the rules the Kubernetes API server applies to it.

The API server parses `.spec.schedule` with robfig/cron v3's standard parser and refuses what
it cannot parse; `schedule_problem` applies the same rules here, so `bodywork cronjob create
--schedule` and `render --schedule` say what is wrong before anything is sent:

- five fields separated by spaces: minute (0-59), hour (0-23), day of month (1-31), month
  (1-12 or JAN-DEC) and day of week (0-6 or SUN-SAT; 7 is not Sunday here);
- each field a comma-separated list of `*` (or `?`), `N`, `N-M`, each optionally `/STEP`
  (`N/STEP` runs from N to the field's maximum); names in any case;
- or one of the macros @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly,
  or `@every DURATION` (a Go duration such as 1h30m);
- no TZ= or CRON_TZ= inside the schedule (Kubernetes refuses it: a CronJob's time zone is
  its own field).

Pure: no I/O.
"""

from __future__ import annotations

import re

from bodywork_bootstrap.recordclass import record

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
EVERY = "@every "
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DIGITS = re.compile(r"\+?[0-9]+")  # what Go's strconv.Atoi takes, bar the minus sign
# Go's time.ParseDuration: "0", or numbers each with its unit (robfig rounds up to 1s)
_GO_DURATION = re.compile(
    r"[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+)"
)
EXAMPLE = '"0 3 * * *" (03:00 every day) or @daily'


@record(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 6, _DAYS),
)


class _Bad(ValueError):
    pass


def _number(text: str, field: _Field) -> int:
    if field.names and text.lower() in field.names:
        return field.low + field.names.index(text.lower())
    if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
        raise _Bad(f"'{text}' is negative")
    if not _DIGITS.fullmatch(text):
        raise _Bad(f"'{text}' is not a number" + (" or a name" if field.names else ""))
    return int(text)


def _range(text: str, field: _Field) -> None:
    """One item of a field's list: `*`, `N` or `N-M`, optionally with `/STEP`."""
    span, *steps = text.split("/")
    if len(steps) > 1:
        raise _Bad(f"'{text}' has more than one '/'")
    bounds = span.split("-")
    if span.startswith("-"):
        raise _Bad(f"'{text}' is negative")
    if bounds[0] in ("*", "?"):  # as robfig reads it, whatever follows a '-'
        start, end = field.low, field.high
    elif len(bounds) == 1:
        start = end = _number(span, field)
    elif len(bounds) == 2:
        start, end = _number(bounds[0], field), _number(bounds[1], field)
    else:
        raise _Bad(f"'{text}' has more than one '-'")
    if steps:
        step = _number(steps[0], _Field("step", 0, 0))
        if step == 0:
            raise _Bad(f"'{text}': the step after '/' must be 1 or more")
        if len(bounds) == 1:
            end = field.high  # N/STEP: from N to the field's maximum
    if start < field.low or end > field.high:
        sunday = " (Sunday is 0 or SUN)" if field.names == _DAYS and end == 7 else ""
        raise _Bad(f"'{text}' is outside {field.low}-{field.high}{sunday}")
    if start > end:
        raise _Bad(f"'{text}' starts after it ends")


def schedule_problem(schedule: str) -> str | None:
    """What Kubernetes would refuse in `schedule`, in a user's words; None when it is fine."""
    if not schedule.strip():
        return f"it is empty: give five fields, e.g. {EXAMPLE}"
    if "TZ" in schedule:
        return (
            "Kubernetes refuses TZ= or CRON_TZ= in a schedule: write it in the cluster's time "
            "zone (usually UTC)"
        )
    if schedule.startswith("@"):
        if schedule in MACROS:
            return None
        if schedule.startswith(EVERY):
            duration = schedule[len(EVERY) :]
            if _GO_DURATION.fullmatch(duration):
                return None
            return f"'{duration}' is not a duration: write e.g. @every 1h30m (units h, m, s)"
        return f"'{schedule}' is not a macro: use one of {', '.join(MACROS)} or @every 1h"
    fields = schedule.split()
    if len(fields) != len(_FIELDS):
        return (
            f"it has {len(fields)} field(s): give five (minute, hour, day of month, month, "
            f"day of week), e.g. {EXAMPLE}"
        )
    for text, field in zip(fields, _FIELDS, strict=True):
        for item in text.split(","):
            try:
                _range(item, field)
            except _Bad as exc:
                return f"in the {field.name} field, {exc} (it takes {_accepts(field)})"
    return None


def _accepts(field: _Field) -> str:
    names = f" or {field.names[0].upper()}-{field.names[-1].upper()}" if field.names else ""
    return f"{field.low}-{field.high}{names}, *, lists a,b, ranges a-b and steps /n"
