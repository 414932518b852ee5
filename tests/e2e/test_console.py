"""What `make run` prints while it serves: request lines that say why a 4xx happened, no metric lines."""

from __future__ import annotations

import re
import threading
import time

import pytest

from .conftest import RunningStack
from .test_walkthrough import FUTURES_FULL

pytestmark = pytest.mark.e2e


def _console_line(stack: RunningStack, pattern: str, since: tuple[int, int], timeout_s: float = 10) -> str:
    """The first console line matching `pattern` printed after the mark `since` (the request line is
    written just after the answer; earlier tests of the session may have printed lines that match)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(pattern, stack.console(since=since), re.MULTILINE)
        if found:
            return found.group(0)
        threading.Event().wait(0.05)
    raise AssertionError(f"no console line matches {pattern!r}:\n{stack.console(since=since)[-3000:]}")


def test_console_says_why_a_4xx_happened_and_prints_no_metric_lines(stack: RunningStack) -> None:
    """A 422 line names the category and field; metrics flushed by the functions stay off the console."""
    # GIVEN a request that makes the function emit a metric (ConnectionCreated), then a bad one
    created = stack.call(
        "POST",
        "/exchange-connections",
        json={"label": "console", "environment": "production", "key_type": "hmac",
              "api_key": FUTURES_FULL["api_key"], "secret": FUTURES_FULL["secret"]},
    )
    assert created.status_code == 201, created.text
    # WHEN a connection is created with a malformed key
    mark = stack.console_mark()
    bad = stack.call(
        "POST",
        "/exchange-connections",
        json={"label": "console", "environment": "production", "key_type": "hmac",
              "api_key": "not a key", "secret": FUTURES_FULL["secret"]},
    )
    # THEN the request line says invalid_request and the field, and no EMF line was printed
    assert bad.status_code == 422, bad.text
    line = _console_line(stack, r"^\[local\] POST /exchange-connections -> 422 \(\d+ ms\): .*$", mark)
    assert line.endswith(f"invalid_request ({bad.json()['error']['field']})"), line
    assert '{"_aws":' not in stack.console()

