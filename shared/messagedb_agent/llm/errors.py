"""One classification of provider failures, so the engine decides retries the same way for all.

Both Vertex SDKs report an HTTP status for API errors and raise transport exceptions from httpx
(or its fork httpx2) for everything below HTTP. The providers hand either to these functions and
get an `LLMError` whose `kind` is one of the constants below; the provider's own message is kept.
"""

from __future__ import annotations

from messagedb_agent.llm.types import LLMError

RATE_LIMITED = "rate_limited"
SERVER = "server"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
BAD_REQUEST = "bad_request"
AUTH = "auth"
SAFETY = "safety"
BAD_RESPONSE = "bad_response"
MODEL_NOT_FOUND = "model_not_found"
QUOTA = "quota"
EMPTY = "empty"  # a 200 with no text and no calls: sampled again once, then a friendly answer
TRUNCATED = "truncated"  # cut at the output limit: sampled again with a larger budget

# Faults only a person can fix (credentials, permissions, the model's name or region, a quota
# of zero). A thread meeting one waits for the fix instead of ending.
OPERATOR_KINDS = frozenset({AUTH, MODEL_NOT_FOUND, QUOTA})

_TIMEOUT_CLASS_NAMES = frozenset({"TimeoutException", "TimeoutError"})
_NETWORK_CLASS_NAMES = frozenset({"TransportError", "NetworkError", "ConnectionError"})


def from_status(status: int, message: str) -> LLMError:
    """An HTTP error status: overload and server faults pass, mistakes in the request do not."""
    if status == 429:
        return LLMError(message, kind=RATE_LIMITED, retryable=True, status=status)
    if status == 408:
        return LLMError(message, kind=TIMEOUT, retryable=True, status=status)
    if status >= 500:
        return LLMError(message, kind=SERVER, retryable=True, status=status)
    if status in (401, 403):
        return LLMError(message, kind=AUTH, retryable=False, status=status)
    if status == 402:  # Anthropic's billing_error: the account's payment needs a person
        return LLMError(message, kind=QUOTA, retryable=False, status=status)
    if status == 404:
        return LLMError(
            f"model not found in this region/project: {message}",
            kind=MODEL_NOT_FOUND,
            retryable=False,
            status=status,
        )
    return LLMError(message, kind=BAD_REQUEST, retryable=False, status=status)


def from_transport(error: BaseException) -> LLMError | None:
    """A failure below HTTP, or None when `error` is not one.

    Matched by class name along the MRO because httpx and httpx2 define the same hierarchy in
    two namespaces, and the SDKs may use either.
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    message = str(error) or type(error).__name__
    if names & _TIMEOUT_CLASS_NAMES:
        return timed_out(message)
    if names & _NETWORK_CLASS_NAMES:
        return unavailable(message)
    return None


def timed_out(message: str) -> LLMError:
    return LLMError(message, kind=TIMEOUT, retryable=True)


def unavailable(message: str) -> LLMError:
    """The endpoint could not be reached or dropped the connection."""
    return LLMError(message, kind=UNAVAILABLE, retryable=True)


def credentials_failed(message: str, *, retryable: bool = False) -> LLMError:
    """No usable token: missing or revoked credentials need a person, not another try."""
    return LLMError(f"Google credentials: {message}", kind=AUTH, retryable=retryable)


def safety_block(message: str) -> LLMError:
    """The provider refused to produce (or return) content; asking again gives the same answer."""
    return LLMError(message, kind=SAFETY, retryable=False)


def empty_reply(message: str) -> LLMError:
    """A 200 with neither text nor calls; the engine samples once more, then answers kindly."""
    return LLMError(message, kind=EMPTY, retryable=True)


def truncated(message: str) -> LLMError:
    """Cut at the output-token limit: a half-written call must never run; the engine asks
    again with a larger budget (up to its ceiling)."""
    return LLMError(message, kind=TRUNCATED, retryable=True)


def is_operator_fault(error: LLMError) -> bool:
    return error.kind in OPERATOR_KINDS


def bad_response(message: str) -> LLMError:
    """A 200 whose body has nothing usable; a new sample may well be fine."""
    return LLMError(message, kind=BAD_RESPONSE, retryable=True)
