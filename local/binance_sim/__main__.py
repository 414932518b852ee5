"""CLI: `python -m local.binance_sim --port 8900` serves the simulator in the foreground."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import DEFAULT_ACCOUNTS_FILE
from .simulator import Simulator


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, bind, print the URLs, serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m local.binance_sim",
        description="Local Binance Spot + USDT-M Futures simulator (127.0.0.1 only).",
    )
    parser.add_argument("--port", type=int, default=8900, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--accounts", type=Path, default=DEFAULT_ACCOUNTS_FILE, help="demo accounts JSON")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every API request")
    parser.add_argument("--spot-weight-limit", type=int, default=6000)
    parser.add_argument("--futures-weight-limit", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=None, help="price series seed")
    args = parser.parse_args(argv)
    overrides = {
        "port": args.port,
        "accounts_file": args.accounts,
        "latency_ms": args.latency_ms,
        "spot_weight_limit": args.spot_weight_limit,
        "futures_weight_limit": args.futures_weight_limit,
    }
    if args.seed is not None:
        overrides["price_seed"] = args.seed
    simulator = Simulator(**overrides)
    try:
        simulator.bind()
    except OSError as error:
        print(f"binance simulator: cannot bind 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return 1
    url = simulator.url
    print(f"Binance simulator listening on {url}", flush=True)
    print(f"  production: spot {url}/api  sapi {url}/sapi  futures {url}/fapi", flush=True)
    print(f"  testnet:    spot {url}/testnet/api  futures {url}/testnet/fapi", flush=True)
    print(f"  control:    {url}/__sim__/   accounts: {args.accounts}", flush=True)
    try:
        simulator.serve_forever()
    except KeyboardInterrupt:
        print("Binance simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
