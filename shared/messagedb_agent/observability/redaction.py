"""Keep secrets and long bodies out of log lines, whoever wrote the line.

A structlog processor, so it sees every line: our own, and the stdlib `logging` records of the
libraries we use. Values under a sensitive key are masked whatever they are (a count stays,
because a number cannot be a credential); strings anywhere are scrubbed of bearer tokens, JWTs
and URL passwords, then cut to the configured length. A traceback is scrubbed but kept whole:
cut to a couple of hundred characters it would no longer say where the failure was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "[redacted]"
ELLIPSIS = "…"
DEFAULT_MAX_CHARS = 200

# Whole words of a key (split on anything not a letter or digit) that mark it as sensitive:
# `access_token`, `Authorization`, `jwt_hs256_secret`, `password`... but not `input_tokens`.
_SENSITIVE_WORDS = frozenset(
    {
        "authorization",
        "auth",
        "token",
        "password",
        "passwd",
        "secret",
        "jwt",
        "cookie",
        "credential",
        "credentials",
        "apikey",
    }
)
_SENSITIVE_PAIRS = ("api_key", "private_key", "client_secret", "set_cookie")
# Keys whose strings are tracebacks: scrubbed, never cut.
_UNCUT_KEYS = frozenset({"exception", "stack", "stack_trace"})

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)[^@\s/]*@")
_PAIR = re.compile(
    r"(?i)\b((?:password|passwd|secret|token|api_key|apikey|access_token|client_secret)"
    r"\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s&,;]+)"
)


def is_sensitive(key: str) -> bool:
    normalized = re.sub(r"[^a-z0-9]+", "_", key.lower())  # `X-Api-Key` reads as `x_api_key`
    if any(pair in normalized for pair in _SENSITIVE_PAIRS):
        return True
    return any(word in _SENSITIVE_WORDS for word in normalized.split("_"))


def scrub(text: str) -> str:
    """The text with credentials it may quote replaced by a mask."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _JWT.sub(MASK, text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _PAIR.sub(lambda m: f"{m.group(1)}{MASK}", text)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


class Redactor:
    """structlog processor: mask sensitive keys, scrub and cut strings, recursively."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self._field(str(key), value, cut_strings=key not in _UNCUT_KEYS)
        return event_dict

    def _field(self, key: str, value: Any, *, cut_strings: bool = True) -> Any:
        if is_sensitive(key) and not isinstance(value, int | float | bool | None):
            return MASK
        return self._value(value, cut_strings=cut_strings)

    def _value(self, value: Any, *, cut_strings: bool = True) -> Any:
        if isinstance(value, str):
            clean = scrub(value)
            return cut(clean, self.max_chars) if cut_strings else clean
        if isinstance(value, Mapping):
            return {str(k): self._field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(item) for item in value]
        if value is None or isinstance(value, int | float | bool):
            return value
        # Anything else is rendered by repr() later; scrub and cut that text now.
        return self._value(str(value))
