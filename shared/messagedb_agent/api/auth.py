"""Who is calling: a bearer JWT's `sub`, verified against the configured keys.

HS256 tokens are checked with the shared secret (or, with nothing configured, the public
development secret), RS256 tokens with the PEM public key or the JWKS endpoint; the token's
header picks which, and an algorithm with no configured key is refused, so a token can never
choose a weaker check than the deployment intends.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from messagedb_agent.api.errors import ApiError
from messagedb_agent.events.ids import MAX_USER_ID_LENGTH, is_channel_user, user_id_problem
from messagedb_agent.settings.serving import ApiSettings

SESSION_EXPIRED = "Your session expired, please log in again."
NOT_LOGGED_IN = "Please log in: this request needs a bearer token."
NOT_VERIFIED = "I couldn't verify your sign-in; please log in again."
UNUSABLE_USER = (
    "Your sign-in names a user id I can't accept: it must be 1 to "
    f"{MAX_USER_ID_LENGTH} printable characters, with no control characters or surrounding "
    "spaces."
)
CHANNEL_SUBJECT = (
    "Your sign-in names a chat platform's user (slack:..., telegram:..., google-chat:...); "
    "those users reach me through their platform only."
)


def _unauthorized(code: str, message: str, problem: str) -> ApiError:
    return ApiError(
        401,
        code,
        message,
        headers={"WWW-Authenticate": f'Bearer error="{problem}"'},
    )


class Authenticator:
    """Verifies bearer tokens; one per process (the JWKS client caches keys)."""

    def __init__(self, settings: ApiSettings) -> None:
        import jwt  # PyJWT and cryptography load with the first request

        self.settings = settings
        self._hs_secret: str | None = None
        if settings.jwt_hs256_secret is not None:
            self._hs_secret = settings.jwt_hs256_secret.get_secret_value()
        elif settings.uses_dev_auth:
            self._hs_secret = settings.dev_auth_secret.get_secret_value()
        self._public_key = (
            settings.jwt_public_key.get_secret_value() if settings.jwt_public_key else None
        )
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    def user_of(self, authorization: str | None) -> str:
        """The calling user's id, or an ApiError with status 401 (503 if the JWKS is down)."""
        import jwt  # PyJWT and cryptography load with the first request

        if not authorization:
            raise _unauthorized("unauthorized", NOT_LOGGED_IN, "invalid_request")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("unauthorized", NOT_LOGGED_IN, "invalid_request")
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise _unauthorized("session_expired", SESSION_EXPIRED, "invalid_token") from None
        except jwt.PyJWKClientConnectionError:
            raise ApiError(
                503,
                "unavailable",
                "I can't check sign-ins right now; please try again in a moment.",
                headers={"Retry-After": "5"},
            ) from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError, ValueError, TypeError):
            raise _unauthorized("unauthorized", NOT_VERIFIED, "invalid_token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise _unauthorized("unauthorized", NOT_VERIFIED, "invalid_token")
        if user_id_problem(subject) is not None:
            raise _unauthorized("unauthorized", UNUSABLE_USER, "invalid_token")
        if is_channel_user(subject):  # a token must never act as a platform's user
            raise _unauthorized("unauthorized", CHANNEL_SUBJECT, "invalid_token")
        return subject

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt  # PyJWT and cryptography load with the first request

        algorithm = jwt.get_unverified_header(token).get("alg")
        key: Any
        if algorithm == "HS256" and self._hs_secret is not None:
            key = self._hs_secret
        elif algorithm == "RS256" and self._public_key is not None:
            key = self._public_key
        elif algorithm == "RS256" and self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
        else:
            raise jwt.InvalidAlgorithmError(f"tokens signed with {algorithm!r} are not accepted")
        settings = self.settings
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={
                "require": ["exp", "sub"],
                "verify_aud": settings.jwt_audience is not None,
                "verify_iss": settings.jwt_issuer is not None,
            },
        )
        return claims


def issue_dev_token(
    sub: str,
    secret: str,
    ttl: timedelta | float = timedelta(hours=1),
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for local work and tests (pair it with the API's secret).

    A `sub` the API would refuse is refused here, so a token is never minted that cannot work.
    """
    problem = user_id_problem(sub)
    if problem is not None:
        raise ValueError(f"{problem}: {sub!r} cannot sign in")
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + int(seconds)}
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    import jwt

    return jwt.encode(claims, secret, algorithm="HS256")
