"""One typed parser per kind of provider field: each returns a value (or None when the field is absent)
or raises `FieldError`, which the flatteners turn into a quarantine reason for the one record.

Providers send what their documentation promises most of the time, and something else now and then
(a number as a string, "false" as text, a float total, a list where a string was expected). Nothing
here truncates, guesses or coerces silently: a value either has one reading or it is rejected.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?\d+(\.\d+)?$")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
_EPOCH_RANGE = (0, 4_102_444_800)  # 1970-01-01 .. 2100-01-01, in seconds


class FieldError(ValueError):
    """A provider field whose value has no single reading; `reason` names the field."""

    def __init__(self, field: str, detail: str = "") -> None:
        super().__init__(f"{field}: {detail}" if detail else field)
        self.field = field
        self.reason = f"invalid_field_type:{field}"


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def as_int(value: Any, field: str, *, required: bool = False) -> int | None:
    """An integer: an int, an integral float, or a string of digits. Never a bool, never truncated."""
    if _absent(value):
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool):
        raise FieldError(field, "a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    raise FieldError(field, f"not an integer ({type(value).__name__})")


def as_id(value: Any, field: str, *, required: bool = True) -> str | None:
    """An identifier as text: a non-empty string or an integer (never a float, bool, list or object)."""
    if _absent(value):
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError(field, f"not an identifier ({type(value).__name__})")
    return str(value).strip()


def as_cents(value: Any, field: str, *, required: bool = False) -> int | None:
    """An amount documented in minor units (cents): as `as_int`, so 12.5 cents is an error, not 12."""
    return as_int(value, field, required=required)


def cents_from_major(value: Any, field: str, *, required: bool = False) -> int | None:
    """An amount in major units ("12.50", 12.5, 20) to cents; more than two decimals is an error."""
    if _absent(value):
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FieldError(field, f"not an amount ({type(value).__name__})")
    text = str(value).strip() if not isinstance(value, float) else repr(value)
    if not _DECIMAL.match(text):
        raise FieldError(field, "not a decimal amount")
    try:
        cents = Decimal(text) * 100
    except InvalidOperation as error:
        raise FieldError(field, "not a decimal amount") from error
    if cents != cents.to_integral_value():
        raise FieldError(field, "more than two decimals")
    return int(cents)


def as_bool(value: Any, field: str, *, default: bool | None = None) -> bool | None:
    """A boolean: true/false, or the strings "true"/"false"/"1"/"0" (any case), or 0/1."""
    if _absent(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise FieldError(field, f"not a boolean ({type(value).__name__})")


def as_text(value: Any, field: str, *, required: bool = False) -> str | None:
    """Text: a string, or a number written as text. A list or an object is an error."""
    if value is None:
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, str):
        if required and not value.strip():
            raise FieldError(field, "missing")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field, f"not text ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(field, "not a finite number")
    return str(value)


def as_object(value: Any, field: str) -> dict[str, Any]:
    """A nested object; absent is an empty one, anything else is an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(field, f"not an object ({type(value).__name__})")
    return value


def as_list(value: Any, field: str) -> list[Any]:
    """A list; absent is an empty one, anything else is an error."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(field, f"not a list ({type(value).__name__})")
    return value


def as_epoch_seconds(value: Any, field: str, *, required: bool = False) -> dt.datetime | None:
    """Unix seconds (int, float or digit string) to naive UTC, within 1970..2100."""
    if _absent(value):
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool):
        raise FieldError(field, "a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as error:
            raise FieldError(field, "not a number of seconds") from error
    if not isinstance(value, int | float) or not math.isfinite(value) or not _EPOCH_RANGE[0] <= value < _EPOCH_RANGE[1]:
        raise FieldError(field, "not a plausible unix time")
    return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)


def as_iso_timestamp(value: Any, field: str, *, required: bool = False) -> dt.datetime | None:
    """ISO 8601 ('Z', an offset, or up to 7 fractional digits; no offset means UTC) to naive UTC."""
    if _absent(value):
        if required:
            raise FieldError(field, "missing")
        return None
    if not isinstance(value, str):
        raise FieldError(field, f"not a timestamp ({type(value).__name__})")
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise FieldError(field, "not an ISO 8601 timestamp") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError as error:
        raise FieldError(field, "out of range") from error


def as_email(value: Any, field: str) -> str | None:
    """An email address, trimmed; anything that does not look like one is an error."""
    if _absent(value):
        return None
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise FieldError(field, "not an email address")
    return value.strip()


def is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(_EMAIL.match(value.strip()))
