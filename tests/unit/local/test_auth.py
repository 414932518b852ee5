"""The local stack's JWT authorizer refuses exactly what API Gateway's JWT authorizer refuses."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.auth import (
    AuthorizerConfig,
    DevJwtAuthority,
    Unauthorized,
    authorizer_config,
    claims_as_strings,
)
from local.aws_emulation import LOCAL_COGNITO_CLIENT, LOCAL_COGNITO_POOL
from local.template import Resolver

CONFIG = AuthorizerConfig(
    name="KlineoJwt",
    header="authorization",
    issuer="https://cognito-idp.ap-northeast-1.amazonaws.com/ap-northeast-1_KlineoLocal",
    audiences=("klineo-local-client",),
)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> DevJwtAuthority:
    """An authority whose key lives in a temporary state folder."""
    return DevJwtAuthority.load_or_create(tmp_path_factory.mktemp("state"), CONFIG)


def _signed(claims: dict, key=None, algorithm: str = "RS256", kid: str = "klineo-local-dev") -> str:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def _claims(**overrides) -> dict:
    now = int(time.time())
    claims = {"sub": "alice", "iss": CONFIG.issuer, "aud": CONFIG.audiences[0], "iat": now, "exp": now + 60}
    claims.update(overrides)
    return claims


def test_issued_token_is_accepted_with_its_subject(authority: DevJwtAuthority) -> None:
    """A token the authority issued passes and carries sub, iss and aud."""
    # GIVEN a dev token for alice
    token = authority.issue("alice")
    # WHEN it is verified as a Bearer header
    claims = authority.verify(f"Bearer {token}")
    # THEN the claims are alice's, for the template's issuer and audience
    assert claims["sub"] == "alice"
    assert claims["iss"] == CONFIG.issuer
    assert claims["aud"] == "klineo-local-client"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token abc", "not-a-jwt", "Bearer not.a.jwt"],
)
def test_missing_or_non_bearer_header_is_refused(authority: DevJwtAuthority, header: str | None) -> None:
    """No header, another scheme, or garbage: Unauthorized."""
    # GIVEN / WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(header)


def test_raw_token_without_bearer_prefix_is_refused(authority: DevJwtAuthority) -> None:
    """A valid token sent without the Bearer scheme is refused."""
    # GIVEN a valid token
    token = authority.issue("alice")
    # WHEN / THEN it is sent bare
    with pytest.raises(Unauthorized):
        authority.verify(token)


def test_unsigned_alg_none_token_is_refused(authority: DevJwtAuthority) -> None:
    """alg=none (an unsigned token) never passes."""
    # GIVEN an unsigned token with otherwise perfect claims
    token = jwt.encode(_claims(), key=None, algorithm="none", headers={"kid": "klineo-local-dev"})
    # WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(f"Bearer {token}")


def test_hs256_token_keyed_with_public_material_is_refused(authority: DevJwtAuthority) -> None:
    """An HMAC-signed token (algorithm confusion) is refused: only RS256 is accepted."""
    # GIVEN a token signed with HS256
    token = jwt.encode(
        _claims(),
        "some-shared-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
        headers={"kid": "klineo-local-dev"},
    )
    # WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(f"Bearer {token}")


def test_token_signed_by_another_key_is_refused(authority: DevJwtAuthority) -> None:
    """Right claims, right kid, wrong key: the signature check fails."""
    # GIVEN a token signed by a key the stack does not hold
    token = _signed(_claims())
    # WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(f"Bearer {token}")


def test_expired_token_is_refused(authority: DevJwtAuthority) -> None:
    """A token past its exp is refused, with no leeway."""
    # GIVEN a token that expired a second ago
    token = authority.issue("alice", ttl_s=-1)
    # WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(f"Bearer {token}")


@pytest.mark.parametrize(
    "override",
    [{"iss": "https://evil.example.com"}, {"aud": "another-client"}],
    ids=["wrong-issuer", "wrong-audience"],
)
def test_token_for_another_issuer_or_audience_is_refused(authority: DevJwtAuthority, override: dict) -> None:
    """Signed by the dev key but for another issuer or audience: refused."""
    # GIVEN a token signed by the stack's key with a foreign iss or aud
    token = authority.issue("alice", extra=override)
    # WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(f"Bearer {token}")


def test_token_without_subject_is_refused(authority: DevJwtAuthority) -> None:
    """A token with no sub claim cannot name a user and is refused."""
    # GIVEN a signed token whose sub was removed
    token = authority.issue("alice", extra={"sub": None})
    # WHEN / THEN
    with pytest.raises(Unauthorized):
        authority.verify(f"Bearer {token}")


def test_access_token_with_client_id_instead_of_aud_is_accepted(authority: DevJwtAuthority) -> None:
    """Like API Gateway, a Cognito access token's client_id counts as the audience."""
    # GIVEN an access token shape: no aud, client_id set
    token = authority.issue(
        "alice", extra={"aud": None, "client_id": "klineo-local-client", "token_use": "access"}
    )
    # WHEN it is verified
    claims = authority.verify(f"Bearer {token}")
    # THEN it passes
    assert claims["client_id"] == "klineo-local-client"


def test_key_is_kept_in_the_state_folder_so_tokens_survive_a_restart(tmp_path: Path) -> None:
    """A second authority on the same folder accepts the first one's tokens; the key file is private."""
    # GIVEN an authority that made its key in a fresh folder, and a token from it
    first = DevJwtAuthority.load_or_create(tmp_path, CONFIG)
    token = first.issue("bob")
    # WHEN another authority loads the same folder
    second = DevJwtAuthority.load_or_create(tmp_path, CONFIG)
    # THEN it accepts the token and the key file is readable by its owner only
    assert second.verify(f"Bearer {token}")["sub"] == "bob"
    assert oct((tmp_path / "dev-jwt-key.pem").stat().st_mode & 0o777) == "0o600"


def test_claims_reach_functions_as_strings_like_api_gateway() -> None:
    """Numbers, booleans and arrays become strings, the way API Gateway passes JWT claims."""
    # GIVEN mixed-type claims
    claims = {"sub": "alice", "exp": 1700000000, "email_verified": True, "cognito:groups": ["admin", "beta"]}
    # WHEN converted
    strings = claims_as_strings(claims)
    # THEN every value is a string
    assert strings == {
        "sub": "alice",
        "exp": "1700000000",
        "email_verified": "true",
        "cognito:groups": "[admin beta]",
    }


def test_scopes_come_from_the_scope_claim_or_are_null() -> None:
    """scopes = the space-separated `scope` claim, or None when the token has none."""
    # GIVEN / WHEN / THEN
    assert DevJwtAuthority.scopes_of({"scope": "orders:write profile"}) == ["orders:write", "profile"]
    assert DevJwtAuthority.scopes_of({"sub": "alice"}) is None


def test_authorizer_config_is_read_from_the_template(template: dict) -> None:
    """Issuer and audience are the template's KlineoJwt authorizer, resolved for the local user pool."""
    # GIVEN the template resolved with the local stack's stand-in Cognito ids
    resolver = Resolver(
        template,
        parameters={"Stage": "dev"},
        refs={
            "UserPool": LOCAL_COGNITO_POOL,
            "UserPoolClient": LOCAL_COGNITO_CLIENT,
        },
    )
    # WHEN the authorizer is read
    config = authorizer_config(resolver)
    # THEN it names the Authorization header, the Cognito issuer URL and the app client
    assert config.name == "KlineoJwt"
    assert config.header == "authorization"
    assert config.issuer == f"https://cognito-idp.ap-northeast-1.amazonaws.com/{LOCAL_COGNITO_POOL}"
    assert config.audiences == (LOCAL_COGNITO_CLIENT,)
