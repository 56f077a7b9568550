"""docs/input.md, one line at a time: a table of raw lines and what each must be, checked
against the product's ``parse_line`` and against the oracle; then both compared on generated
hostile lines and timestamp tokens."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
from typing import Any

import pytest
import reference
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs import Malformed, Record, parse_line, parse_timestamp

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "lines.json")
EPOCH = dt.datetime(1970, 1, 1)


def raw(text: str) -> bytes:
    """A fixture string as bytes: UTF-8, with ``\\xHH`` standing for one raw byte."""
    return re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.encode("utf-8"))


def line_of(row: dict[str, Any]) -> bytes:
    line = raw(row["line"])
    if "pad_to" in row:
        tail = raw(row.get("tail", ""))
        fill = raw(row["pad_with"])
        line += fill * (row["pad_to"] - len(line) - len(tail)) + tail
        assert len(line) == row["pad_to"]
    return line


def load_rows() -> list[dict[str, Any]]:
    with open(FIXTURE, encoding="utf-8") as f:
        rows: list[dict[str, Any]] = json.load(f)["rows"]
    return rows


ROWS = load_rows()


def expected_instant(row: dict[str, Any]) -> int:
    moment = dt.datetime.fromisoformat(row["utc"])
    fraction: int = row["ns"]
    return (moment - EPOCH) // dt.timedelta(seconds=1) * 1_000_000_000 + fraction


def test_table_covers_every_rule() -> None:
    """At least 60 rows, and every outcome of docs/input.md appears."""
    assert len(ROWS) >= 60
    outcomes = {"blank" if r.get("blank") else r.get("reason", "valid") for r in ROWS}
    assert outcomes == {"blank", "valid", *reference.REASONS}


@pytest.mark.parametrize("row", ROWS, ids=[r["why"] for r in ROWS])
def test_parse_line_table(row: dict[str, Any]) -> None:
    """The product's parser gives each row its expected record, reason or blank."""
    got = parse_line(line_of(row))
    if row.get("blank"):
        assert got is None
    elif "reason" in row:
        assert isinstance(got, Malformed)
        assert got.reason == row["reason"]
        if row["reason"] == "unknown_level":
            assert got.level == raw(row["level"])
    else:
        assert isinstance(got, Record)
        assert got == Record(expected_instant(row), row["level"].encode(), raw(row["service"]),
                             raw(row["user"]))


@pytest.mark.parametrize("row", ROWS, ids=[r["why"] for r in ROWS])
def test_oracle_table(row: dict[str, Any]) -> None:
    """The oracle reads the same table the same way (so it is worth comparing against)."""
    got = reference.classify(line_of(row))
    if row.get("blank"):
        assert got.kind == "blank"
    elif "reason" in row:
        assert (got.kind, got.reason) == ("malformed", row["reason"])
        if row["reason"] == "unknown_level":
            assert got.token == raw(row["level"])
    else:
        assert got.kind == "valid"
        assert got.instant == expected_instant(row)
        assert (got.level, got.service, got.user) == (
            row["level"], raw(row["service"]), raw(row["user"]))


def as_oracle(parsed: Record | Malformed | None) -> tuple[Any, ...]:
    if parsed is None:
        return ("blank",)
    if isinstance(parsed, Malformed):
        return ("malformed", parsed.reason, parsed.level)
    return ("valid", parsed.ts_ns, parsed.level.decode(), parsed.service, parsed.user)


def oracle(line: bytes) -> tuple[Any, ...]:
    got = reference.classify(line)
    if got.kind == "blank":
        return ("blank",)
    if got.kind == "malformed":
        return ("malformed", got.reason, got.token)
    return ("valid", got.instant, got.level, got.service, got.user)


@settings(max_examples=strategies.examples(3000), deadline=strategies.DEADLINE)
@given(token=strategies.timestamps)
def test_timestamps_agree_with_oracle(token: bytes) -> None:
    """Every timestamp token, valid or not, gets the same UTC instant (or none) from both."""
    expected = reference.read_timestamp(token)
    got = parse_timestamp(token)
    assert got == (None if expected is None else expected[0] * 1_000_000_000 + expected[1])


@settings(max_examples=strategies.examples(2000), deadline=strategies.DEADLINE)
@given(line=strategies.lines)
def test_lines_agree_with_oracle(line: bytes) -> None:
    """Every generated hostile line is classified alike by the product and the oracle."""
    assert as_oracle(parse_line(line)) == oracle(line)


@settings(max_examples=strategies.examples(60), deadline=strategies.DEADLINE)
@given(line=strategies.long_lines)
def test_long_lines_agree_with_oracle(line: bytes) -> None:
    """Lines around the 65,536-byte limit, and giant blank ones."""
    assert as_oracle(parse_line(line)) == oracle(line)


@settings(max_examples=strategies.examples(500), deadline=strategies.DEADLINE)
@given(day=st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_oracle_calendar(day: dt.date) -> None:
    """The oracle's own day count agrees with the standard library on years 1-9999."""
    days = reference.day_number(day.year, day.month, day.day) - reference.EPOCH_DAY
    assert days == (day - EPOCH.date()).days
    assert reference.utc_text(days * 86_400) == f"{day.isoformat()}T00:00:00Z"


LIMIT = 65_536
REASON_ORDER = ("too_long", "too_few_fields", "bad_timestamp", "unknown_level", "bad_encoding")
"""The order docs/input.md checks the reasons in, restated here rather than imported."""


@pytest.mark.parametrize("length", [LIMIT - 1, LIMIT, LIMIT + 1])
@pytest.mark.parametrize("fill", [b"m", b" ", b"\xff"])
def test_line_lengths_at_the_limit(length: int, fill: bytes) -> None:
    """Up to 65,536 bytes a line is parsed; past it, it is too_long unless it is blank."""
    head = b"2024-03-01T10:00:00Z INFO auth u1 "
    line = head + fill * (length - len(head))
    got = parse_line(line)
    if length > LIMIT:
        assert got == Malformed("too_long")
    else:
        assert isinstance(got, Record) and got.user == b"u1"
    assert parse_line(b" " * length) is None


def breaking(reasons: frozenset[str]) -> bytes:
    """A line breaking exactly the rules named (a too_long line's padding is glued to its last
    field, so that the number of fields stays what the other rules asked)."""
    stamp = b"2023-02-29T10:00:00Z" if "bad_timestamp" in reasons else b"2024-02-29T10:00:00Z"
    level = b"Loud" if "unknown_level" in reasons else b"Warning"
    service = b"s\xc3" if "bad_encoding" in reasons else b"svc"
    fields = [stamp, level, service] + ([] if "too_few_fields" in reasons else [b"user"])
    line = b"\t".join(fields)
    return line + b"p" * (LIMIT + 1 - len(line)) if "too_long" in reasons else line


@pytest.mark.parametrize("reasons", [
    frozenset(c) for n in range(1, 6) for c in itertools.combinations(REASON_ORDER, n)],
    ids=lambda r: "+".join(x for x in REASON_ORDER if x in r))
def test_the_first_broken_rule_is_the_reason(reasons: frozenset[str]) -> None:
    """Every combination of broken rules: the first in the documented order wins."""
    first = next(r for r in REASON_ORDER if r in reasons)
    got = parse_line(breaking(reasons))
    assert isinstance(got, Malformed) and got.reason == first
    assert got.level == (b"LOUD" if first == "unknown_level" else b"")
    assert oracle(breaking(reasons))[:2] == ("malformed", first)


def test_warning_is_warn() -> None:
    got = [parse_line(b"2024-03-01T10:00:00Z %s a b" % level)
           for level in (b"WARNING", b"warning", b"Warn", b"WARN")]
    assert all(isinstance(r, Record) and r.level == b"WARN" for r in got)
