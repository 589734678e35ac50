"""The SSE ids a live stream hands out, read back: one grammar for the parser and the API's
OpenAPI pattern."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import StringConstraints, TypeAdapter, ValidationError

from messagedb_agent.live.cursor import PATTERN, START, Cursor, parse_cursor

# the pattern as the API's query model applies it
AS_PATTERN: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(pattern=PATTERN)])

VALID = [
    ("-1", START),
    ("0", Cursor(0)),
    ("12", Cursor(12)),
    ("12.3", Cursor(12, 3)),
    ("7.0", Cursor(7, 0)),
    ("12~40", Cursor(12, chars=40)),
    ("12~0", Cursor(12, chars=0)),
    ("9" * 16, Cursor(int("9" * 16))),
    ("1.999999", Cursor(1, 999_999)),
    ("1~999999999", Cursor(1, chars=999_999_999)),
]
INVALID = [
    *("", "-2", "-0", "012", "1.", ".1", "1.2.3", "1.02", "1~", "1~01", "1.2~3", "1~2.3"),
    *(" 1", "1 ", "1\n", "x", "1e3", "٣", "1" * 17, "1.1234567", "1~1234567890"),
]


@pytest.mark.parametrize(("value", "cursor"), VALID)
def test_a_cursor_is_a_position_and_maybe_an_index_in_its_group_or_live_text_after_it(
    value: str, cursor: Cursor
) -> None:
    assert parse_cursor(value) == cursor
    assert AS_PATTERN.validate_python(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_anything_else_is_no_cursor_for_the_parser_nor_the_pattern(value: str) -> None:
    with pytest.raises(ValueError, match="not an event id"):
        parse_cursor(value)
    with pytest.raises(ValidationError):
        AS_PATTERN.validate_python(value)
