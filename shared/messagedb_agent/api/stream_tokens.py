"""Short-lived tokens that let a browser's `EventSource` open one thread's stream.

`EventSource` cannot send an `Authorization` header, and a bearer token in a URL ends up in
proxy logs, browser history and `Referer` headers. So a client trades its bearer token (in a
header) for a stream token: an HS256 JWT naming the user and the one thread, valid for a
minute, signed with a key of its own. The key is derived by HMAC with a fixed label from a
secret of the ingest function's (`STREAM_TOKEN_SECRET`, else the API's HS256 secret, which
Terraform keeps in Secret Manager), so a stream token can never pass as a bearer token, nor a
bearer token as a stream token: different key, and a different audience.

The token is checked when a stream opens, not while it runs: a stream already open ends at
its maximum duration, and reopening it needs a new token.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from messagedb_agent.api.errors import ApiError

AUDIENCE = "messagedb-agent:thread-stream"
TTL_SECONDS = 60
_LABEL = b"messagedb-agent stream token v1"

EXPIRED = "This stream link expired; ask for a new stream token and open the stream again."
INVALID = "I couldn't verify this stream link; ask for a new stream token."


@dataclass(frozen=True, slots=True)
class StreamToken:
    token: str
    expires_at: datetime


def stream_key(secret: str) -> bytes:
    """A key used for nothing else, derived from the deployment's signing secret."""
    return hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()


def issue(key: bytes, user: str, thread_id: str, *, now: float | None = None) -> StreamToken:
    import jwt

    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user,
        "thread": thread_id,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + TTL_SECONDS,
    }
    token = jwt.encode(claims, key, algorithm="HS256")
    return StreamToken(token, datetime.fromtimestamp(issued + TTL_SECONDS, UTC))


def verify(key: bytes, token: str, thread_id: str) -> str:
    """The user the token was issued to, if it is valid for `thread_id`; 401 otherwise."""
    import jwt

    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            leeway=5,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "stream_token_expired", EXPIRED) from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise ApiError(401, "unauthorized", INVALID) from None
    user, thread = claims.get("sub"), claims.get("thread")
    if not isinstance(user, str) or thread != thread_id:
        raise ApiError(401, "unauthorized", INVALID)
    return user
