"""Request models: key material checked per key type, enums, candles bounds; secrets never echoed."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from klineo.models.backtest_request import BacktestRequest
from klineo.models.candles import CandlesQuery
from klineo.models.common import ConnectionCreateRequest, ConnectionTestRequest
from klineo.models.fields import decimal_string
from klineo.models.order_history import OrderHistoryQuery
from klineo.models.strategies import PageQuery
from klineo.models.strategy_requests import StrategyCreateRequest
from pydantic import ValidationError

from local.binance_sim.accounts import load_accounts
from local.binance_sim.config import DEFAULT_ACCOUNTS_FILE

API_KEY = "A" * 64


def _pem(key, encryption=None) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption or serialization.NoEncryption()).decode()


def _errors(**body) -> list[dict]:
    with pytest.raises(ValidationError) as caught:
        ConnectionTestRequest(**body)
    return caught.value.errors()


def _secret_error(key_type: str, secret: str) -> str:
    errors = _errors(environment="production", key_type=key_type, api_key=API_KEY, secret=secret)
    assert [e["loc"] for e in errors] == [("secret",)]
    return errors[0]["msg"]


@pytest.fixture(scope="module")
def demo_accounts():
    """The simulator's demo accounts (keys parsed once)."""
    return load_accounts(DEFAULT_ACCOUNTS_FILE)


def test_demo_keys_of_every_type_are_accepted(demo_accounts):
    """GIVEN the HMAC, Ed25519 and RSA demo keys WHEN validated THEN each is accepted."""
    for account in demo_accounts.values():
        secret = account.secret if account.key_type == "HMAC" else account.private_key_pem
        request = ConnectionCreateRequest(label=" main ", environment=account.environment,
                                          key_type=account.key_type.lower(), api_key=account.api_key,
                                          secret=secret)
        assert request.label == "main"
        assert secret.strip() in request.secret.get_secret_value()


def test_hmac_secret_with_spaces_or_too_short_is_refused_without_echo():
    """GIVEN bad HMAC secrets WHEN validated THEN the message says why and never repeats the secret."""
    for secret in ("short-secret", "with space " * 8):
        message = _secret_error("hmac", secret)
        assert secret not in message


def test_rsa_key_below_2048_bits_is_refused():
    """GIVEN a 1024-bit RSA private key WHEN validated THEN refused, naming the size rule."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key is the point
    assert "2048 to 4096 bits" in _secret_error("rsa", _pem(small))


def test_public_key_instead_of_private_key_is_explained():
    """GIVEN an Ed25519 PUBLIC key WHEN validated THEN the message asks for the private key."""
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert "PRIVATE key" in _secret_error("ed25519", public)


def test_password_protected_key_is_refused():
    """GIVEN an encrypted PEM WHEN validated THEN refused with the export hint."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = _pem(key, serialization.BestAvailableEncryption(b"pw"))
    assert "password" in _secret_error("ed25519", pem)


def test_key_of_the_other_type_is_refused():
    """GIVEN an Ed25519 key declared as RSA and the reverse WHEN validated THEN both refused."""
    assert "not an RSA" in _secret_error("rsa", _pem(ed25519.Ed25519PrivateKey.generate()))
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert "not an Ed25519" in _secret_error("ed25519", rsa_pem)


def test_garbage_pem_is_refused_without_echo():
    """GIVEN a PEM-looking but broken key WHEN validated THEN refused; the text is not echoed."""
    broken = "-----BEGIN PRIVATE KEY-----\nTOP-SECRET-MATERIAL\n-----END PRIVATE KEY-----\n"
    message = _secret_error("ed25519", broken)
    assert "TOP-SECRET-MATERIAL" not in message


def test_unknown_enums_and_bad_api_keys_are_refused():
    """GIVEN an unknown environment, key type and an API key with a newline THEN each field is named."""
    errors = _errors(environment="mainnet", key_type="dsa", api_key="abc\ndef" * 4, secret="s" * 64)
    assert {e["loc"][0] for e in errors} == {"environment", "key_type", "api_key"}


def test_label_must_not_be_blank():
    """GIVEN a blank label WHEN validated THEN refused."""
    with pytest.raises(ValidationError):
        ConnectionCreateRequest(label="   ", environment="testnet", key_type="hmac", api_key=API_KEY,
                                secret="s" * 64)


def test_secret_is_not_in_the_model_repr():
    """GIVEN a valid request WHEN printed THEN the secret is masked."""
    request = ConnectionTestRequest(environment="testnet", api_key=API_KEY, secret="Z" * 64)
    assert "Z" * 64 not in repr(request) and "Z" * 64 not in str(request.model_dump())


@pytest.mark.parametrize(("query", "ok"), [
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, True),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": 1001}, False),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": 1500, "market": "futures"}, True),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": 1501, "market": "futures"}, False),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": 0}, False),
    ({"symbol": "BTCUSDT", "interval": "1s"}, True),
    ({"symbol": "BTCUSDT", "interval": "1s", "market": "futures"}, False),
    ({"symbol": "BTCUSDT", "interval": "2m"}, False),
    ({"symbol": "btcusdt", "interval": "1m"}, False),
    ({"symbol": "B", "interval": "1m"}, False),
    ({"symbol": "BTCUSDT", "interval": "1m", "environment": "demo"}, False),
])
def test_candles_query_bounds(query, ok):
    """GIVEN a candles query WHEN validated THEN limits per market, intervals and symbol pattern hold."""
    if ok:
        CandlesQuery(**query)
    else:
        with pytest.raises(ValidationError):
            CandlesQuery(**query)


def test_decimal_string_never_uses_an_exponent():
    """GIVEN tiny and Binance-formatted amounts WHEN formatted THEN plain decimal strings."""
    assert decimal_string("0.00000001") == "0.00000001"
    assert decimal_string("1E-8") == "0.00000001"
    assert decimal_string("0.50000000") == "0.50000000"


@pytest.mark.parametrize("query_model", [OrderHistoryQuery, PageQuery], ids=["order_history", "strategy_log"])
def test_every_listing_bounds_limit_and_cursor_by_the_same_rule(query_model):
    """GIVEN any list route's query WHEN limit/cursor are out of bounds THEN refused naming the field;
    the longest cursor any listing hands out (a strategy log's, ~300 characters) is taken by all."""
    for bad, field in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"cursor": "a+b"}, "cursor"),
                       ({"cursor": "c" * 401}, "cursor")):
        with pytest.raises(ValidationError) as caught:
            query_model(**bad)
        assert [e["loc"] for e in caught.value.errors()] == [(field,)]

    page = query_model(limit=100, cursor="c" * 300)

    assert (page.limit, page.cursor, query_model().limit) == (100, "c" * 300, 50)


_DEFINITION = {"symbol": "BTCUSDT", "interval": "1h", "type": "sma_crossover", "size": "0.01"}
_BODIES = {StrategyCreateRequest: {**_DEFINITION, "connection_id": "a" * 32},
           BacktestRequest: {**_DEFINITION, "start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"}}


def _refused_fields(model, body) -> list[tuple]:
    """The fields ``model`` refuses in ``body`` ([] when it takes it)."""
    try:
        model(**body)
    except ValidationError as exc:
        return [e["loc"] for e in exc.errors()]
    return []


@pytest.mark.parametrize("changes", [
    {"leverage": "5"}, {"leverage": 126}, {"stop_loss_pct": "1.123456789"}, {"stop_loss_pct": "1.1234567"},
    {"take_profit_pct": "100"}, {"trailing_stop_pct": "0.15"}, {"trailing_stop_pct": "0.1"},
    {"size": None, "size_pct": "1.1234567"}, {"size": None, "quote_size_usdt": "0"},
    {"paper_balance_usdt": "-1"}, {"direction": "sideways"}, {"parameters": {"fast": 30, "slow": 10}},
    {"size_pct": "5"}, {"symbol": "btc"},
])
def test_a_backtest_takes_each_strategy_field_exactly_as_a_create_does(changes):
    """GIVEN one strategy field set to an edge value WHEN sent to POST /strategies and to a backtest
    THEN both accept it, or both refuse it naming the same field (each rule is written once)."""
    outcomes = {model: _refused_fields(model, {k: v for k, v in {**body, **changes}.items() if v is not None})
                for model, body in _BODIES.items()}

    assert outcomes[StrategyCreateRequest] == outcomes[BacktestRequest]



@pytest.mark.parametrize(("value", "refused"), [("20", False), ("15.5", False), ("20.1", True)])
def test_trailing_stop_pct_follows_binance_callback_rate_maximum_of_20(value, refused):
    """trailing_stop_pct is sent as callbackRate, whose maximum Binance raised from 10 to 20 on 2026-10-23."""
    body = {**_BODIES[StrategyCreateRequest], "trailing_stop_pct": value}
    fields = _refused_fields(StrategyCreateRequest, body)

    assert fields == ([("trailing_stop_pct",)] if refused else [])


@pytest.mark.parametrize(("stamp", "ms"), [("2039-06-07T19:03:40.081Z", 2_191_086_220_081),
                                           ("2038-07-15T11:09:33.654Z", 2_162_804_973_654),
                                           ("2025-01-01T00:00:00.999999Z", 1_735_689_600_999)])
def test_backtest_period_is_converted_to_exact_epoch_milliseconds(stamp, ms):
    """A backtest's start and end in epoch ms are exact for every datetime (rounded down to the ms), also
    where the float timestamp times 1000 falls just under the integer (2038-07-15T11:09:33.654Z)."""
    body = BacktestRequest(**{**_BODIES[BacktestRequest], "start": "2025-01-01T00:00:00Z", "end": stamp})
    assert body.end_ms() == ms
