"""A local stand-in for Google's OAuth 2.0 token endpoint, as service accounts use it.

"Using OAuth 2.0 for Server to Server Applications", "Making the access token request"
(https://developers.google.com/identity/protocols/oauth2/service-account#httprest): the
application POSTs a form with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and
`assertion=<JWT>`; the JWT's header is `{"alg":"RS256","typ":"JWT"}` (with the key's id as
`kid`), it is signed with the service account's private key, and its claims are `iss` (the
account's email), `scope` (space-delimited), `aud` ("When making an access token request
this value is always https://oauth2.googleapis.com/token"), `iat` and `exp` ("a maximum of 1
hour after the issued time"). The answer is JSON with `access_token`, `expires_in` and
`token_type`; a refused request is a 400 with `error` and `error_description`.

`service_account_file` writes a key file of the kind `GOOGLE_APPLICATION_CREDENTIALS` names,
with a fresh RSA key and `token_uri` pointing here, so real google-auth code, in any process,
gets its tokens from this server; `accepts` tells whether a bearer token is one it issued and
still valid, for the Vertex stand-in to check.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tests.local_service import LocalService

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_ASSERTION_LIFETIME = 3600
TOKEN_LIFETIME = 3599
# Clocks differ a little: an assertion issued up to this far in the future is still accepted.
CLOCK_SKEW = 300


@dataclass(frozen=True)
class Grant:
    """One token request the endpoint answered: the claims it verified, the token it gave."""

    claims: dict[str, Any]
    access_token: str


class Refused(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass
class FakeTokenEndpoint(LocalService):
    """Start with `start()`, hand `service_account_file(...)` to the code under test."""

    required_scope: str = CLOUD_PLATFORM_SCOPE
    grants: list[Grant] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    _accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = field(default_factory=dict)
    _tokens: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    thread_name: ClassVar[str] = "fake-google-token"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account_file(self, directory: Path, *, project: str = "some-project") -> Path:
        """A service-account key file with a new RSA key this endpoint will recognise."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        email = f"agent-{uuid.uuid4().hex[:8]}@{project}.iam.gserviceaccount.com"
        with self._lock:
            self._accounts[email] = (key_id, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(uuid.uuid4().int)[:21],
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
            "universe_domain": "googleapis.com",
        }
        path = directory / f"{email.split('@')[0]}.json"
        path.write_text(json.dumps(info, indent=2))
        return path

    def accepts(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.time()

    def accepts_self_signed(self, token: str, scope: str) -> bool:
        """Whether `token` is a JWT one of this endpoint's service accounts signed for itself,
        with `scope`: what google-auth sends instead of an access token when the client allows
        it ("Addendum: Service account authorization without OAuth",
        https://developers.google.com/identity/protocols/oauth2/service-account#jwt-auth)."""
        try:
            claims = self._signed_claims(token)
            _check_times(claims)
        except Refused:
            return False
        return (
            claims.get("sub") == claims.get("iss")
            and scope in str(claims.get("scope") or "").split()
        )

    def _signed_claims(self, assertion: str) -> dict[str, Any]:
        """The claims of a JWT signed with one of the service accounts' keys, or Refused."""
        pieces = assertion.split(".")
        if len(pieces) != 3:
            raise Refused("invalid_request", "Invalid JWT: assertion must have three segments")
        header, claims = (_decode_json(piece) for piece in pieces[:2])
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            raise Refused("invalid_grant", "Invalid JWT: the header must be RS256 and JWT")
        with self._lock:
            account = self._accounts.get(str(claims.get("iss")))
        if account is None:
            raise Refused("invalid_grant", "Invalid grant: account not found")
        key_id, public_key = account
        if "kid" in header and header["kid"] != key_id:
            raise Refused("invalid_grant", "Invalid JWT Signature.")
        try:
            public_key.verify(
                _b64decode(pieces[2]),
                f"{pieces[0]}.{pieces[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError) as error:
            raise Refused("invalid_grant", "Invalid JWT Signature.") from error
        return claims

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        try:
            if handler.path.split("?", 1)[0] != "/token":
                raise Refused("invalid_request", f"no such endpoint {handler.path}")
            content_type = handler.headers.get("Content-Type", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                raise Refused("invalid_request", "Content-Type must be a form")
            form = {key: values[0] for key, values in parse_qs(raw).items()}
            grant = self._grant(form)
        except Refused as refused:
            with self._lock:
                self.refusals.append(refused.description)
            body = {"error": refused.error, "error_description": refused.description}
            _send(handler, 400, body)
            return
        _send(
            handler,
            200,
            {
                "access_token": grant.access_token,
                "expires_in": TOKEN_LIFETIME,
                "token_type": "Bearer",
            },
        )

    def _grant(self, form: dict[str, str]) -> Grant:
        grant_type = form.get("grant_type")
        if grant_type != JWT_BEARER:
            raise Refused("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        claims = self._signed_claims(form.get("assertion") or "")
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            raise Refused(
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_AUDIENCE}",
            )
        _check_times(claims)
        scopes = str(claims.get("scope") or "").split()
        if self.required_scope not in scopes:
            raise Refused("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + TOKEN_LIFETIME
            grant = Grant(claims, token)
            self.grants.append(grant)
        return grant


def _check_times(claims: dict[str, Any]) -> None:
    issued, expires = claims.get("iat"), claims.get("exp")
    now = time.time()
    if (
        not isinstance(issued, int)
        or not isinstance(expires, int)
        or not 0 < expires - issued <= MAX_ASSERTION_LIFETIME
        or issued > now + CLOCK_SKEW
        or expires <= now
    ):
        raise Refused(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )


def _b64decode(piece: str) -> bytes:
    return base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4))


def _decode_json(piece: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(piece))
    except ValueError as error:
        raise Refused("invalid_request", "Invalid JWT: malformed segment") from error
    if not isinstance(value, dict):
        raise Refused("invalid_request", "Invalid JWT: a segment is not a JSON object")
    return value


def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
