"""Every refusal the API can answer with: an HTTP status, a stable code, a sentence for people.

Clients branch on `code`; people read `message`. Nothing else about a failure (no exception
text, no stack trace) ever leaves the process: unexpected failures become `internal_error`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class ErrorItem(BaseModel):
    """One problem with one part of the request."""

    model_config = ConfigDict(extra="forbid")

    field: str | None = Field(default=None, description="Dotted path of the offending input.")
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable machine-readable code, e.g. `thread_not_found`.")
    message: str = Field(description="A friendly sentence to show to the user.")
    details: list[ErrorItem] | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class ApiError(Exception):
    """Raised anywhere below the router; the router turns it into the error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[ErrorItem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> ErrorBody:
        return ErrorBody(
            error=ErrorDetail(code=self.code, message=self.message, details=self.details)
        )


def not_found() -> ApiError:
    return ApiError(404, "not_found", "There is nothing at this address.")


def method_not_allowed(allowed: list[str]) -> ApiError:
    return ApiError(
        405,
        "method_not_allowed",
        "This address does not accept that kind of request.",
        headers={"Allow": ", ".join(sorted(allowed))},
    )


def invalid_json() -> ApiError:
    return ApiError(400, "invalid_json", "The request body is not valid JSON.")


def unsupported_media_type() -> ApiError:
    return ApiError(
        415,
        "unsupported_media_type",
        "The request body must be JSON, sent with the header Content-Type: application/json.",
        headers={"Accept-Post": "application/json"},
    )


def invalid_request(details: list[ErrorItem], message: str | None = None) -> ApiError:
    fields = ", ".join(sorted({d.field for d in details if d.field}))
    text = message or (
        f"Some of the request is not right ({fields})." if fields else "The request is not right."
    )
    return ApiError(400, "invalid_request", text, details)


def payload_too_large(limit: int) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"The request is too large; the limit is {limit:,} bytes."
    )


def unavailable() -> ApiError:
    return ApiError(
        503,
        "unavailable",
        "I'm having trouble reaching the database; please try again in a moment.",
        headers={"Retry-After": "5"},
    )


def internal_error() -> ApiError:
    return ApiError(
        500, "internal_error", "Something went wrong on our side; please try again in a moment."
    )
