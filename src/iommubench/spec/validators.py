"""Checking one value of a config: the validators, and the words errors use for a value.

A validator takes (value, key path) and returns the value normalised, or raises `Bad` with the
path and one line saying what is wrong and what is allowed; config.py turns it into the
user's error once it knows which file or `--set` the value came from.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence


class Bad(Exception):
    """Raised inside validation; turned into a ConfigError once the source is known."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(path, detail)
        self.path = path
        self.detail = detail


def clip(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, with control characters escaped (one line always)."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: object) -> str:
    """A short, safe description of a user's value (never a full repr of a container)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
        return str(value)
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {clip(repr(value))}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return f"a {type(value).__name__}"


def key_text(key: object) -> str:
    return clip(key) if isinstance(key, str) else f"<{describe(key)}>"


def suggest(word: object, choices: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close and word.lower() in choices:
        close = [word.lower()]
    return f"; did you mean '{close[0]}'?" if close else ""


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def type_hint(value: object, want: str) -> str:
    """Extra words for the common YAML slips: quoted numbers, 1e-3 read as a string."""
    if isinstance(value, str):
        try:
            float(value.strip())
        except ValueError:
            return ""
        if want == "float" and any(c in value for c in "eE") and "." not in value:
            return "; YAML reads an exponent without a dot as a string: write e.g. 1.0e-3"
        return "; remove the quotes"
    if isinstance(value, float) and want == "int" and value.is_integer():
        return f"; write {int(value)}"
    return ""


# --------------------------------------------------------------------------- field validators

Validator = Callable[[object, str], object]


def int_field(lo: int, hi: int | None, unit: str = "") -> Validator:
    def check(value: object, path: str) -> int:
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        if not is_int(value):
            raise Bad(
                path,
                f"must be an integer {rng}{unit} (got {describe(value)}{type_hint(value, 'int')})",
            )
        assert isinstance(value, int)
        if value < lo or (hi is not None and value > hi):
            raise Bad(path, f"must be an integer {rng}{unit} (got {describe(value)})")
        return value

    return check


def float_field(lo: float, hi: float, lo_open: bool, unit: str = " s") -> Validator:
    def check(value: object, path: str) -> float:
        rng = f"{'>' if lo_open else '>='} {lo:g} and <= {hi:g}{unit}"
        if not (is_int(value) or isinstance(value, float)):
            raise Bad(
                path, f"must be a number {rng} (got {describe(value)}{type_hint(value, 'float')})"
            )
        assert isinstance(value, (int, float))
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < lo or number > hi or (lo_open and number == lo):
            raise Bad(path, f"must be a number {rng} (got {describe(value)})")
        return number

    return check


def choice_field(names: Callable[[], Sequence[str]]) -> Validator:
    """One of the names `names()` returns (read when a value is checked, so a registry that
    the native core fills is asked only once it is needed)."""

    def check(value: object, path: str) -> str:
        known = sorted(names())
        allowed = ", ".join(known)
        if not isinstance(value, str):
            raise Bad(path, f"must be one of: {allowed} (got {describe(value)})")
        if value not in known:
            raise Bad(
                path,
                f"unknown value {clip(repr(value))}; allowed: {allowed}{suggest(value, known)}",
            )
        return value

    return check
