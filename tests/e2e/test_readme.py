"""The README works as written: its walkthrough runs verbatim against the stack; its tables are complete."""

from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import urlparse

import pytest
from klineo.binance.environments import PROXY_ENV, URL_ENV

from local.template import REPO_ROOT, Resolver, function_environment, function_specs, load_template

from .conftest import RunningStack, stack_environment

pytestmark = pytest.mark.e2e

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The README text under ``## title`` up to the next level-2 heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


# A 1m candle is stale once the next one closes: a tick dispatched in a minute's last instant reaches
# the worker in the next minute, and its run is skipped (stale_candle), as deployed. The Scheduler
# fires at a minute's start; so before the paper strategy's steps the script waits, at most 20 s,
# until the wall clock is at most 40 s into a minute. The README's own lines run unchanged.
EARLY_IN_THE_MINUTE = (
    "python3 -c 'import time; s = time.time() % 60; time.sleep(60 - s + 0.5 if s > 40 else 0)'\n"
)


def walkthrough_script() -> str:
    """The Walkthrough's ```bash blocks in order, as one script, with the clock gate before the paper step."""
    blocks = re.findall(r"```bash\n(.*?)```", _section("Walkthrough"), flags=re.DOTALL)
    assert len(blocks) >= 9, "the walkthrough lost steps"
    paper = [index for index, block in enumerate(blocks) if '"mode": "paper"' in block]
    assert len(paper) == 1, "the walkthrough should create exactly one paper strategy"
    blocks.insert(paper[0], EARLY_IN_THE_MINUTE)
    return "\n".join(blocks)


def test_readme_walkthrough_runs_as_written(stack: RunningStack) -> None:
    """The walkthrough's commands, unchanged, succeed against a fresh stack and show what the README says."""
    # GIVEN the stack's port and state folder, as a user who started it with --api-port would have
    environment = {
        **stack_environment(),
        "KLINEO_API_PORT": str(urlparse(stack.api).port),
        "KLINEO_LOCAL_STATE": str(stack.state_dir),
    }
    # WHEN the README's blocks run in bash (stopping at the first failing command)
    result = subprocess.run(  # noqa: S603 - fixed arguments
        ["bash", "-euo", "pipefail", "-c", walkthrough_script()],  # noqa: S607 - bash from PATH, as a user's shell
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    # THEN every step succeeded with the answers the README describes
    assert result.returncode == 0, output
    for expected in (
        "connection id: ",
        '"ok": true',
        '"asset": "USDT"',
        '"futures_enabled": true',
        '"margin_type": "isolated"',
        '"source": "placed"',
        "over-limit: 422",
        '"category": "order_rejected"',
        '"field": "max_notional_usdt"',
        '"source": "existing"',
        '"origin": "api"',
        '"source": "queried"',
        '"role": "stop_loss"',
        '"role": "take_profit"',
        '"protective_orders": [',
        '"reduce_only": true',
        '"orders": []',
        '"total_return_pct"',
        "equity points: ",
        "strategy id: ",
        '"StrategyDispatcherFunction"',
        '"mode": "paper"',
        '"stop_loss_pct": "1"',
        '"realised_pnl": "-',
        '"kind": "order_fill"',
        "other user: 404",
        "no token: 401",
    ):
        assert expected in output, f"{expected!r} missing from:\n{output}"
    assert output.count('"close_time"') >= 1, output
    # AND the demo secret is nowhere in any answer
    secret = "cyllYs7k4BPKRzRRLakL5VhqwMwxWz81DqnYRPWEecvei4ia6f73EgLurHdYy40S"
    assert secret not in result.stdout


def test_readme_walkthrough_creates_its_strategy_with_an_idempotency_key() -> None:
    """The walkthrough's POST /strategies, the form a frontend copies, sends an Idempotency-Key: without one,
    a create sent again after a lost answer starts a second strategy trading the same signals."""
    blocks = re.findall(r"```bash\n(.*?)```", _section("Walkthrough"), flags=re.DOTALL)
    creates = [block for block in blocks if '-X POST "$API/strategies"' in block]
    assert len(creates) == 1, "the walkthrough should create exactly one strategy"
    assert re.search(r'-H "Idempotency-Key: \$\w+"', creates[0]), creates[0]


def test_readme_environment_table_names_every_variable() -> None:
    """Each variable the template, the Binance layer and the local stack read is in the README table."""
    # GIVEN the variables the code and template read
    resolver = Resolver(
        load_template(),
        parameters={"Stage": "dev"},
        refs={
            "DataTable": "t",
            "RateLimitTable": "t",
            "StrategyQueue": "q",
            "KlinesCacheTable": "t",
            "BacktestQueue": "q",
        },
    )
    names = {name for spec in function_specs() for name in function_environment(resolver, spec)}
    names |= set(URL_ENV.values()) | {PROXY_ENV}
    stack_source = (REPO_ROOT / "local" / "stack.py").read_text(encoding="utf-8")
    names |= set(re.findall(r'"(KLINEO_[A-Z_]+)"', stack_source))
    # WHEN the README's table is read
    table = _section("Environment variables")
    # THEN each one is there
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert not missing, missing


def test_readme_has_the_two_commands_and_the_simulator_section() -> None:
    """`make run`, `make test`, and the Binance simulator section with its command."""
    # GIVEN / WHEN / THEN
    assert "make run" in _section("The two commands") and "make test" in _section("The two commands")
    assert "make simulator PORT=8900" in _section("Binance simulator")
    assert "```mermaid" in _section("Architecture")
    assert os.path.isfile(REPO_ROOT / "openapi.json")
