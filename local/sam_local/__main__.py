"""``make sam-local``: ``python -m local.sam_local up|down`` (see local.sam_local.stack)."""

from __future__ import annotations

import argparse
import shlex

from local.sam_local.stack import SamLocal, SamLocalOptions
from local.template import REPO_ROOT


def main(argv: list[str] | None = None) -> None:
    """Bring the sam-local stack up (and say how to invoke a function) or take it down."""
    parser = argparse.ArgumentParser(prog="python -m local.sam_local")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--arch", choices=["x86_64", "arm64"], default="", help="default: this machine's CPU")
    args = parser.parse_args(argv)
    stack = SamLocal(SamLocalOptions(arch=args.arch))
    if args.action == "down":
        stack.down()
        print("sam-local: emulator container and network removed")
        return
    stack.up()
    argv_example = stack.invoke_argv("BalanceFunction", REPO_ROOT / "events" / "balance.json")
    command = shlex.join(str(part).replace(f"{REPO_ROOT}/", "") for part in argv_example)
    print(
        f"""
sam-local is up: network {stack.options.network}, moto and the Binance simulator in container
{stack.options.container} (from this machine: {stack.moto_url} and {stack.sim_url}).
Functions are built for {stack.options.architecture} in {stack.options.build_dir.relative_to(REPO_ROOT)}.
The data events/*.json refer to is there (local/sam_local/demo_data.py).

Invoke any function with its event (leave AWS_* credentials unset in this shell):
  {command}

Take it down: make sam-local-down"""
    )


if __name__ == "__main__":
    main()
