"""Signing: the published HMAC vectors, Ed25519/RSA round trips and percent-encoding of what is signed."""

from __future__ import annotations

import base64
import gc
import hmac
import types
from decimal import Decimal
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from klineo.binance import Credentials, ErrorCategory, KeyType, KlineoError, encode_params, signature

SPOT_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
FUTURES_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    """A freshly generated Ed25519 key."""
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """A freshly generated 2048-bit RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_spot_hmac_vector_reproduces():
    """GIVEN the spot doc's secret and payload WHEN signed THEN the published signature comes out."""
    creds = Credentials(
        "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A", SPOT_SECRET, KeyType.HMAC
    )
    payload = encode_params(
        {
            "symbol": "LTCBTC",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": 1,
            "price": Decimal("0.1"),
            "recvWindow": 5000,
            "timestamp": 1499827319559,
        }
    )
    assert payload == (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559"
    )
    assert signature(payload, creds) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_spot_non_ascii_symbol_is_percent_encoded_before_signing():
    """GIVEN a UTF-8 symbol WHEN encoded and signed THEN the percent-encoded bytes give the doc's value."""
    creds = Credentials("key", SPOT_SECRET, KeyType.HMAC)
    payload = encode_params(
        {
            "symbol": "\uff11\uff12\uff13\uff14\uff15\uff16",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "1",
            "price": "0.1",
            "recvWindow": 5000,
            "timestamp": 1499827319559,
        }
    )
    assert payload.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert signature(payload, creds) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_futures_hmac_vector_reproduces():
    """GIVEN the futures doc's secret and payload WHEN signed THEN the published signature comes out."""
    creds = Credentials("key", FUTURES_SECRET, KeyType.HMAC)
    payload = encode_params(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": 1,
            "price": 9000,
            "timeInForce": "GTC",
            "recvWindow": 5000,
            "timestamp": 1591702613943,
        }
    )
    assert signature(payload, creds) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_hmac_credentials_sign_every_payload_alone():
    """GIVEN HMAC credentials that keep their keyed state WHEN they sign several payloads, in turn
    and again THEN each signature is that payload's alone (nothing of an earlier one carried over)."""
    creds = Credentials("key", FUTURES_SECRET, KeyType.HMAC)
    payloads = ["a=1", "symbol=BTCUSDT&side=BUY", "", "a=1"]
    signed = [signature(payload, creds) for payload in payloads]
    assert signed == [hmac.new(FUTURES_SECRET.encode(), p.encode(), "sha256").hexdigest() for p in payloads]


def test_ed25519_signature_verifies_and_is_percent_encoded_base64(ed_key):
    """GIVEN an Ed25519 key WHEN a payload is signed THEN it is percent-encoded base64 that verifies."""
    creds = Credentials("key", _pem(ed_key), KeyType.ED25519)
    payloads = [f"symbol=BTCUSDT&timestamp={1700000000000 + i}" for i in range(40)]
    encoded = [signature(p, creds) for p in payloads]
    for payload, sig in zip(payloads, encoded, strict=True):
        assert not set("+/=") & set(sig)
        ed_key.public_key().verify(base64.b64decode(unquote(sig)), payload.encode())
    # 64-byte signatures always end in "=" padding, so the encoding is always exercised.
    assert all(sig.endswith("%3D") for sig in encoded)


def test_rsa_signature_verifies_and_is_percent_encoded_base64(rsa_key):
    """GIVEN an RSA key WHEN a payload is signed THEN PKCS#1 v1.5/SHA-256 verifies and +/= are escaped."""
    creds = Credentials("key", _pem(rsa_key), KeyType.RSA)
    seen = set()
    for i in range(20):
        payload = f"symbol=BTCUSDT&timestamp={1700000000000 + i}"
        sig = signature(payload, creds)
        raw = unquote(sig)
        seen |= set(raw) & set("+/")
        assert not set("+/=") & set(sig)
        rsa_key.public_key().verify(
            base64.b64decode(raw), payload.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    assert seen, "no + or / appeared in 20 signatures; the percent-encoding went unexercised"


def test_a_loaded_key_is_parsed_once_and_forgotten_with_its_credentials(ed_key):
    """GIVEN Ed25519 credentials that signed WHEN used again, then dropped THEN no re-parse, no PEM kept."""
    pem = _pem(ed_key)
    creds = Credentials("key", pem, KeyType.ED25519)
    signature("a=1", creds)
    loaded = creds.loaded_key(lambda *_: pytest.fail("the PEM was parsed again"))
    ed_key.public_key().verify(loaded.sign(b"x"), b"x")
    del creds, loaded
    gc.collect()
    assert [r for r in gc.get_referrers(pem) if not isinstance(r, types.FrameType)] == []


def test_key_type_mismatch_is_invalid_secret(ed_key):
    """GIVEN an Ed25519 PEM declared as RSA WHEN used THEN invalid_request names the secret field."""
    creds = Credentials("key", _pem(ed_key), KeyType.RSA)
    with pytest.raises(KlineoError) as caught:
        signature("a=1", creds)
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.field == "secret"


def test_unreadable_pem_error_carries_no_key_material():
    """GIVEN garbage as a private key WHEN used THEN the error names the field, never shows or chains it."""
    secret = "-----BEGIN PRIVATE KEY-----\nNOTAKEYsentinel0123456789\n-----END PRIVATE KEY-----"
    with pytest.raises(KlineoError) as caught:
        signature("a=1", Credentials("key", secret, KeyType.ED25519))
    assert caught.value.field == "secret"
    assert "sentinel" not in str(caught.value) and "sentinel" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_encode_params_formats_values_for_binance():
    """GIVEN bools, Decimals, floats, lists and None WHEN encoded THEN Binance's textual forms are used."""
    query = encode_params(
        {
            "reduceOnly": True,
            "quantity": Decimal("0.00100000"),
            "price": 1e-05,
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "skip": None,
            "note": "a b/c",
        }
    )
    assert query == (
        "reduceOnly=true&quantity=0.00100000&price=0.00001"
        "&symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D&note=a%20b%2Fc"
    )


def test_credentials_never_show_their_secret():
    """GIVEN credentials WHEN printed THEN neither the secret nor the whole API key appears."""
    creds = Credentials("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "topsecretvalue", "HMAC")
    assert creds.key_type is KeyType.HMAC
    for text in (repr(creds), str(creds), f"{creds}"):
        assert "topsecretvalue" not in text
        assert "ABCDEFGHIJKLMNOPQRSTUVWXYZ" not in text
    assert creds.api_key_masked == "ABCD…WXYZ"


@pytest.mark.parametrize(
    ("api_key", "secret", "key_type", "field"),
    [
        ("", "s", "hmac", "api_key"),
        ("key with space", "s", "hmac", "api_key"),
        ("key\r\nX-Injected: 1", "s", "hmac", "api_key"),
        ("key", "", "hmac", "secret"),
        ("key", "s", "dsa", "key_type"),
    ],
)
def test_malformed_credentials_are_rejected_naming_the_field(api_key, secret, key_type, field):
    """GIVEN malformed credentials WHEN built THEN invalid_request names the field and omits the value."""
    with pytest.raises(KlineoError) as caught:
        Credentials(api_key, secret, key_type)
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.field == field
    if field == "api_key" and api_key:
        assert api_key not in caught.value.message
