"""AWS calls of a warm futures order and balance call, counted at botocore against moto + the simulator.

Each handler runs once cold (its caches fill: clients, secret, exchangeInfo, the connection item),
then the counted invocation runs warm. Every botocore API call in it is listed. Targets:
- a warm futures order costs 2 AWS round trips (issue 16): ONE TransactWriteItems claiming the
  order record with the gates as ConditionChecks, and ONE UpdateItem recording the outcome; the
  secret and the connection item come from the container's caches;
- a warm balance call costs at most one read.
Both are judged twice: right after the previous call, and after --idle-s seconds (default 16, past
the Binance rate limiter's 15 s quiet refresh of its shared state), as a user's next click comes.
Also shown, not judged: an idempotent replay (same Idempotency-Key and body again).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

from bench.report import Report
from bench.stack import AwsCall, Stack, count_aws_calls, local_stack, quiet_stdout, response_body

__all__ = ["ORDER_BODY", "ORDER_ROUND_TRIPS_TARGET", "classify_order_calls", "main", "measure", "run"]

_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "GetSecretValue"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}

# A warm order: the claim transaction and the outcome's update.
ORDER_ROUND_TRIPS_TARGET = 2
# A LIMIT BUY far below the simulator's BTCUSDT mark: it rests as NEW (nothing fills).
ORDER_BODY = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "0.010",
    "price": "20000",
    "timeInForce": "GTC",
}


def _order_event(stack: Stack, connection_id: str, key: str) -> dict[str, Any]:
    return stack.event(
        "futures_order", body={"connection_id": connection_id, **ORDER_BODY}, headers={"idempotency-key": key}
    )


def _invoke(stack: Stack, function: str, event: dict[str, Any]) -> tuple[dict[str, Any], list[AwsCall]]:
    with quiet_stdout(), count_aws_calls() as calls:
        response = stack.invoke(function, event)
    return response, list(calls)


def measure(stack: Stack, idle_s: float = 0.0) -> dict[str, Any]:
    """Cold, warm (and after idle_s) invocations of futures_order and balance; the calls of each."""
    tables = {"data": _env("DATA_TABLE")}
    with quiet_stdout():
        connection_id = stack.create_connection("futures-full", futures=True)
    # A fresh container for the counted functions: nothing cached from the set-up invocations.
    stack.clear_caches()
    results: dict[str, Any] = {"tables": tables}

    cold, cold_calls = _invoke(stack, "futures_order", _order_event(stack, connection_id, str(uuid.uuid4())))
    warm_key = str(uuid.uuid4())
    warm, warm_calls = _invoke(stack, "futures_order", _order_event(stack, connection_id, warm_key))
    replay, replay_calls = _invoke(stack, "futures_order", _order_event(stack, connection_id, warm_key))
    results["futures_order"] = {
        "cold": {"status": cold["statusCode"], "calls": cold_calls},
        "warm": {"status": warm["statusCode"], "calls": warm_calls, "body": response_body(warm)},
        "replay": {"status": replay["statusCode"], "calls": replay_calls},
    }
    if idle_s > 0:
        # The same container's next order after a pause (a user's next click usually comes later than
        # the rate limiter's quiet refresh, 15 s); the balance function below is another container.
        time.sleep(idle_s)
        idle, idle_calls = _invoke(
            stack, "futures_order", _order_event(stack, connection_id, str(uuid.uuid4()))
        )
        results["futures_order"]["warm_idle"] = {
            "status": idle["statusCode"],
            "calls": idle_calls,
            "idle_s": idle_s,
        }

    stack.clear_caches()
    path = f"/exchange-connections/{connection_id}/balance"
    event = stack.event("balance", path=path, path_parameters={"id": connection_id})
    cold, cold_calls = _invoke(stack, "balance", event)
    warm, warm_calls = _invoke(stack, "balance", event)
    results["balance"] = {
        "cold": {"status": cold["statusCode"], "calls": cold_calls},
        "warm": {"status": warm["statusCode"], "calls": warm_calls},
    }
    if idle_s > 0:
        time.sleep(idle_s)
        idle, idle_calls = _invoke(stack, "balance", event)
        results["balance"]["warm_idle"] = {
            "status": idle["statusCode"],
            "calls": idle_calls,
            "idle_s": idle_s,
        }
    return results


def _env(name: str) -> str:
    return os.environ.get(name, "")


def classify_order_calls(calls: list[AwsCall], data_table: str) -> dict[str, list[AwsCall]]:
    """Split a futures order's calls into what the target allows (one claim, one outcome) and the rest."""
    claims = [c for c in calls if c.operation == "TransactWriteItems" and c.table == data_table]
    outcomes = [c for c in calls if c.operation == "UpdateItem" and c.table == data_table]
    allowed = claims[:1] + outcomes[:1]
    remaining = list(calls)
    for call in allowed:
        remaining.remove(call)
    return {"claims": claims, "outcomes": outcomes, "allowed": allowed, "extra": remaining}


def _print_calls(report: Report, title: str, status: int, calls: list[AwsCall]) -> None:
    report.line(f"   {title}: HTTP {status}, {len(calls)} AWS call(s)")
    for index, call in enumerate(calls, 1):
        report.line(f"     {index}. {call.describe()}")


def _judge_order(report: Report, title: str, scenario: dict[str, Any], data_table: str) -> None:
    calls: list[AwsCall] = scenario["calls"]
    split = classify_order_calls(calls, data_table)
    ok_status = 200 <= scenario["status"] < 300
    within = len(calls) <= ORDER_ROUND_TRIPS_TARGET
    passed = ok_status and within and len(split["claims"]) == 1 and not split["extra"]
    detail = []
    if not ok_status:
        detail.append(f"answered HTTP {scenario['status']}")
    if split["extra"]:
        detail.append("beyond the target: " + "; ".join(c.describe() for c in split["extra"]))
    if any(c.service == "secretsmanager" for c in calls):
        detail.append("the secret was fetched again (cache missed)")
    report.target(
        title,
        f"{ORDER_ROUND_TRIPS_TARGET} AWS round trips: 1 claim TransactWriteItems + 1 outcome UpdateItem",
        f"{len(calls)} round trip(s) ({len(split['claims'])} claim, {len(split['outcomes'])} outcome, "
        f"{len(split['extra'])} other)",
        passed,
        "; ".join(detail),
    )


def run(report: Report, idle_s: float = 16.0) -> dict[str, Any]:
    """Measure and print into `report`."""
    with local_stack() as stack:
        results = measure(stack, idle_s)
    order, balance = results["futures_order"], results["balance"]
    _print_calls(
        report, "futures_order, cold (first invocation)", order["cold"]["status"], order["cold"]["calls"]
    )
    _print_calls(
        report, "futures_order, WARM (new Idempotency-Key)", order["warm"]["status"], order["warm"]["calls"]
    )
    _print_calls(
        report,
        "futures_order, replay of the same key and body",
        order["replay"]["status"],
        order["replay"]["calls"],
    )
    _print_calls(report, "balance, cold", balance["cold"]["status"], balance["cold"]["calls"])
    _print_calls(report, "balance, WARM", balance["warm"]["status"], balance["warm"]["calls"])
    for name, scenarios in (("balance", balance), ("futures_order", order)):
        if "warm_idle" in scenarios:
            idle = scenarios["warm_idle"]
            _print_calls(
                report, f"{name}, WARM after {idle['idle_s']:.0f} s idle", idle["status"], idle["calls"]
            )

    order_scenarios = [("warm futures order: AWS calls", "warm")]
    if "warm_idle" in order:
        order_scenarios.append(
            (f"warm futures order after {order['warm_idle']['idle_s']:.0f} s idle: AWS calls", "warm_idle")
        )
    for title, key in order_scenarios:
        _judge_order(report, title, order[key], results["tables"]["data"])
    scenarios = [("warm balance: AWS calls", "warm")]
    if "warm_idle" in balance:
        scenarios.append(
            (f"warm balance after {balance['warm_idle']['idle_s']:.0f} s idle: AWS calls", "warm_idle")
        )
    for title, key in scenarios:
        balance_calls: list[AwsCall] = balance[key]["calls"]
        reads = [c for c in balance_calls if c.operation in _READS]
        others = [c for c in balance_calls if c.operation not in _READS]
        ok_status = 200 <= balance[key]["status"] < 300
        detail = "" if ok_status else f"answered HTTP {balance[key]['status']}"
        if len(reads) > 1:
            detail = "reads: " + "; ".join(c.describe() for c in reads)
        report.target(
            title,
            "≤ 1 read, nothing else",
            f"{len(balance_calls)} calls ({len(reads)} read(s), {len(others)} other)",
            ok_status and len(reads) <= 1 and not others,
            detail,
        )
        report.figure(f"balance_{key}", [c.describe() for c in balance_calls])
    report.figure("futures_order_warm", [c.describe() for c in order["warm"]["calls"]])
    report.figure("futures_order_replay", [c.describe() for c in order["replay"]["calls"]])
    return results


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m bench.aws_calls [--json PATH]."""
    parser = argparse.ArgumentParser(prog="python -m bench.aws_calls", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--idle-s",
        type=float,
        default=16.0,
        help="also count a balance call and an order after this many idle seconds (0: skip)",
    )
    parser.add_argument("--json", help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    shown = [] if args.idle_s == 16.0 else ["--idle-s", f"{args.idle_s:g}"]
    report = Report(
        "aws_calls",
        "botocore API calls of a warm futures order and a warm balance call "
        "(moto + Binance simulator, real handlers)",
        module="bench.aws_calls",
        argv=shown,
    )
    run(report, args.idle_s)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
