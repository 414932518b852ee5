"""The README's ``sam local invoke`` section shows the command ``make sam-local`` prints, and the
template lets that command point every function at the local stack."""

from __future__ import annotations

import re
import shlex

from local.sam_local.stack import SamLocal, SamLocalOptions
from local.template import REPO_ROOT, function_specs, load_template


def _readme_section(title: str) -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_invoke_command_is_the_one_make_sam_local_prints() -> None:
    """The README's example is, word for word, the command built for the same function and CPU."""
    # GIVEN the README's sam local invoke command (continuation lines joined)
    block = re.search(r"```bash\n(.*?)```", _readme_section("sam local invoke"), flags=re.DOTALL).group(1)
    command = next(line for line in block.replace("\\\n", " ").splitlines() if "sam local invoke" in line)
    words = shlex.split(command)
    arch = words[words.index("--parameter-overrides") + 1].split()[0].split("=")[1]
    # WHEN the default stack builds the command for that function and event
    stack = SamLocal(SamLocalOptions(arch=arch))
    expected = stack.invoke_argv(words[3], REPO_ROOT / words[5])
    # THEN they are the same
    assert words == [str(part).replace(f"{REPO_ROOT}/", "") for part in expected]


def test_every_local_override_is_declared_empty_for_every_function() -> None:
    """AWS_ENDPOINT_URL and every BINANCE_* base URL are declared (so --env-vars can set them), empty."""
    # GIVEN the template's global variables and the names the env-vars file sets
    declared = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    stack = SamLocal(SamLocalOptions(arch="x86_64"))
    stack.resolver.refs.update({"DataTable": "t", "RateLimitTable": "t",
                                "StrategyQueue": "http://127.0.0.1:5001/123456789012/q",
                                "KlinesCacheTable": "t", "BacktestQueue": "http://127.0.0.1:5001/123456789012/b"})
    # WHEN the env-vars content is made
    variables = stack.function_variables()
    # THEN each function gets every override, aimed at the emulator container, and each is declared ""
    specs = {spec.logical_id: spec for spec in function_specs()}
    assert set(variables) == set(specs)
    for logical_id, values in variables.items():
        assert values["AWS_ENDPOINT_URL"] == "http://klineo-sam-local-emulators:5000"
        assert values["BINANCE_SPOT_URL"] == "http://klineo-sam-local-emulators:8900"
        assert values["BINANCE_FUTURES_TESTNET_URL"] == "http://klineo-sam-local-emulators:8900/testnet"
        own = specs[logical_id].properties.get("Environment", {}).get("Variables", {})
        assert not [name for name in values if name not in declared and name not in own]
    overrides = [name for name in variables["BalanceFunction"] if name.startswith(("AWS_", "BINANCE_"))]
    assert overrides and all(declared[name] == "" for name in overrides if name != "BINANCE_RECV_WINDOW_MS")
    assert variables["StrategyDispatcherFunction"]["STRATEGY_QUEUE_URL"].startswith(
        "http://klineo-sam-local-emulators:5000/"
    )
