"""The layer's Binance base-URL variables for the local stack, the tests and the benchmarks."""

from __future__ import annotations

__all__ = ["REAL_TESTNET", "binance_environment"]

REAL_TESTNET = {"spot": "https://testnet.binance.vision", "futures": "https://demo-fapi.binance.com"}


def binance_environment(sim_url: str | None) -> dict[str, str]:
    """The layer's Binance base-URL variables: all at the simulator, or Binance's testnet hosts."""
    if sim_url is None:
        return {
            "BINANCE_SPOT_TESTNET_URL": REAL_TESTNET["spot"],
            "BINANCE_FUTURES_TESTNET_URL": REAL_TESTNET["futures"],
            "BINANCE_SPOT_DEMO_URL": "https://demo-api.binance.com",
            "BINANCE_FUTURES_DEMO_URL": "https://demo-fapi.binance.com",
        }
    # From the layer's own table of variables, so a base URL added there is never left pointing at Binance.
    from klineo.binance.enums import Environment
    from klineo.binance.environments import URL_ENV

    testnet = f"{sim_url}/testnet"
    return {
        name: sim_url if environment is Environment.PRODUCTION else testnet
        for (_, environment), name in URL_ENV.items()
    }
