"""The three small vocabularies every Binance call uses: market, environment and API-key type."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Environment", "KeyType", "Market"]


class Market(StrEnum):
    """Which Binance API family a call goes to."""

    SPOT = "spot"
    FUTURES = "futures"


class Environment(StrEnum):
    """Which Binance deployment a connection's keys belong to."""

    PRODUCTION = "production"
    TESTNET = "testnet"
    DEMO = "demo"


class KeyType(StrEnum):
    """How a Binance API key signs requests."""

    HMAC = "hmac"
    ED25519 = "ed25519"
    RSA = "rsa"
