"""``SamLocal.invoke`` starts a function again only when Docker refused its container a taken port."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.sam_local import stack as sam_stack
from local.sam_local.stack import PORT_RACE_ATTEMPTS, SamLocal, SamLocalOptions

TAKEN = ('Error: 500 Server Error ... ("driver failed programming external connectivity on endpoint x: '
         'Bind for 127.0.0.1:6140 failed: port is already allocated")')


def _sam_answering(monkeypatch: pytest.MonkeyPatch, answers: list[tuple[int, str, str]]) -> list[list[str]]:
    """``subprocess.run`` in the stack module answers ``answers`` (returncode, stdout, stderr) in turn."""
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        code, out, err = answers[len(calls) - 1]
        return subprocess.CompletedProcess(argv, code, out, err)

    monkeypatch.setattr(sam_stack.subprocess, "run", run)
    return calls


def test_a_container_refused_a_taken_port_is_invoked_again(monkeypatch, tmp_path: Path) -> None:
    """A first invocation whose container Docker refused (port taken) runs again; the second answers."""
    calls = _sam_answering(monkeypatch, [(1, "", TAKEN), (0, '{"statusCode": 200}\n', "logs")])

    answer, logs = SamLocal(SamLocalOptions()).invoke("CandlesFunction", tmp_path / "event.json")

    assert (answer, logs, len(calls)) == ({"statusCode": 200}, "logs", 2)


def test_any_other_failure_is_reported_at_once(monkeypatch, tmp_path: Path) -> None:
    """A function that failed for another reason is never run again (it may have run): the error is raised."""
    calls = _sam_answering(monkeypatch, [(1, "", "Error: function timed out")])

    with pytest.raises(RuntimeError, match="timed out"):
        SamLocal(SamLocalOptions()).invoke("CandlesFunction", tmp_path / "event.json")
    assert len(calls) == 1


def test_the_port_race_is_retried_a_bounded_number_of_times(monkeypatch, tmp_path: Path) -> None:
    """A port taken every time ends in the error after PORT_RACE_ATTEMPTS invocations, not a loop."""
    calls = _sam_answering(monkeypatch, [(1, "", TAKEN)] * PORT_RACE_ATTEMPTS)

    with pytest.raises(RuntimeError, match="port is already allocated"):
        SamLocal(SamLocalOptions()).invoke("CandlesFunction", tmp_path / "event.json")
    assert len(calls) == PORT_RACE_ATTEMPTS
