"""Bearer JWTs: who may call, and what a caller sees when their token is not good enough."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from pydantic import ValidationError
from tests.api.conftest import SECRET, MakeApi, api_settings, bearer
from werkzeug.test import TestResponse

from messagedb_agent.api import DEV_AUTH_SECRET, issue_dev_token
from messagedb_agent.api.auth import SESSION_EXPIRED


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def rs256(key: rsa.RSAPrivateKey, sub: str, **headers: str) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": sub, "exp": now + 60}, key, algorithm="RS256", headers=headers)
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def error_of(response: TestResponse) -> dict[str, str]:
    body = response.get_json()
    assert isinstance(body, dict)
    error: dict[str, str] = body["error"]
    return error


def test_a_request_without_a_token_is_asked_to_log_in(client: FlaskClient) -> None:
    response = client.get("/v1/threads")

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert "log in" in error_of(response)["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "token-without-scheme"],
)
def test_a_malformed_authorization_header_is_refused(client: FlaskClient, header: str) -> None:
    response = client.get("/v1/threads", headers={"Authorization": header})

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


def test_a_token_signed_with_another_secret_is_refused(client: FlaskClient, user: str) -> None:
    response = client.get("/v1/threads", headers=bearer(user, secret="x" * 40))

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


def test_an_unsigned_token_is_refused(client: FlaskClient, user: str) -> None:
    token = jwt.encode({"sub": user, "exp": int(time.time()) + 60}, "", algorithm="none")

    response = client.get("/v1/threads", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


def test_an_expired_token_gets_the_friendly_session_expired_answer(
    client: FlaskClient, user: str
) -> None:
    token = issue_dev_token(user, SECRET, ttl=-120)

    response = client.get("/v1/threads", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert error_of(response) == {"code": "session_expired", "message": SESSION_EXPIRED}


def test_a_token_without_expiry_is_refused(client: FlaskClient, user: str) -> None:
    token = jwt.encode({"sub": user}, SECRET, algorithm="HS256")

    response = client.get("/v1/threads", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


def test_the_audience_is_checked_when_configured(make_api: MakeApi, user: str) -> None:
    client = make_api(jwt_audience="chat-app").flask_app().test_client()

    wrong = client.get("/v1/threads", headers=bearer(user, audience="other-app"))
    missing = client.get("/v1/threads", headers=bearer(user))
    right = client.get("/v1/threads", headers=bearer(user, audience="chat-app"))

    assert (wrong.status_code, missing.status_code, right.status_code) == (401, 401, 200)


def test_the_issuer_is_checked_when_configured(make_api: MakeApi, user: str) -> None:
    client = make_api(jwt_issuer="https://issuer.test").flask_app().test_client()

    wrong = client.get("/v1/threads", headers=bearer(user, issuer="https://evil.test"))
    right = client.get("/v1/threads", headers=bearer(user, issuer="https://issuer.test"))

    assert (wrong.status_code, right.status_code) == (401, 200)


def test_rs256_tokens_verify_against_the_configured_public_key(
    make_api: MakeApi, user: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    client = make_api(jwt_hs256_secret=None, jwt_public_key=public_pem(rsa_key))
    test_client = client.flask_app().test_client()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    good = test_client.get("/v1/threads", headers=rs256(rsa_key, user))
    forged = test_client.get("/v1/threads", headers=rs256(stranger, user))
    hs = test_client.get("/v1/threads", headers=bearer(user))

    assert good.status_code == 200
    assert forged.status_code == 401
    assert hs.status_code == 401  # no HS256 secret is configured, so HS256 is not accepted


def test_a_public_key_cannot_be_used_as_an_hmac_secret(
    make_api: MakeApi, user: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The classic algorithm-confusion forgery: HS256 signed with the RSA public key."""
    pem = public_pem(rsa_key)
    client = make_api(jwt_hs256_secret=None, jwt_public_key=pem).flask_app().test_client()
    # PyJWT refuses to sign with a PEM key, so the forgery is assembled by hand.
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "exp": int(time.time()) + 60}).encode())
    signature = b64(hmac.new(pem.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest())
    forged = f"{head}.{claims}.{signature}"

    response = client.get("/v1/threads", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def test_rs256_tokens_verify_against_a_jwks_endpoint(
    make_api: MakeApi, user: str, rsa_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    client = make_api(jwt_hs256_secret=None, jwt_jwks_url=jwks_url).flask_app().test_client()

    good = client.get("/v1/threads", headers=rs256(rsa_key, user, kid="k1"))
    unknown_key = client.get("/v1/threads", headers=rs256(rsa_key, user, kid="k2"))

    assert good.status_code == 200
    assert unknown_key.status_code == 401


def test_with_no_key_configured_the_dev_secret_signs_local_tokens(
    make_api: MakeApi, user: str
) -> None:
    client = make_api(jwt_hs256_secret=None).flask_app().test_client()

    response = client.get("/v1/threads", headers=bearer(user, secret=DEV_AUTH_SECRET))

    assert response.status_code == 200


def test_a_configured_secret_disables_the_dev_secret(client: FlaskClient, user: str) -> None:
    response = client.get("/v1/threads", headers=bearer(user, secret=DEV_AUTH_SECRET))

    assert response.status_code == 401


def test_the_dev_secret_is_refused_on_cloud_run_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="JWT_HS256_SECRET"):
        api_settings(jwt_hs256_secret=None, k_service="ingest")

    assert api_settings(jwt_hs256_secret=None, k_service="ingest", allow_dev_auth=True)
    assert api_settings(k_service="ingest").api.jwt_hs256_secret is not None


def test_health_and_the_document_need_no_token(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
