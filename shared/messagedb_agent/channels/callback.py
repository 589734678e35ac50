"""Signed reply delivery to a front-end's callback URL.

The body is JSON; the signature is HMAC-SHA256 over `"<timestamp>.<body>"` with the callback
signing secret, sent as `X-Agent-Signature: t=<timestamp>,v1=<hex>` (the scheme receivers know
from Stripe-style webhooks), and `X-Agent-Delivery-Id` carries the delivery's step id: the same
on every attempt, so a receiver can drop the rare repeat after a worker crashed between its
POST and recording it. Once `ReplyDelivered` is recorded the reply is never sent again.

Every attempt resolves the URL's host and checks each address (`outbound`), then connects to
a checked address itself, so the name is not resolved again between the check and the
connection; the Host header and TLS's server name stay the URL's host, so the certificate is
verified against it. Redirects are never followed: a redirect is a place nobody checked.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

import httpx

from messagedb_agent.channels import outbound

SIGNATURE_HEADER = "X-Agent-Signature"
DELIVERY_ID_HEADER = "X-Agent-Delivery-Id"
DEFAULT_TOLERANCE_SECONDS = 300


class DeliveryError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        delivered: int = 0,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.delivered = delivered  # parts of a reply of several the platform took, in all


class ReplySender(Protocol):
    def send(self, url: str, body: bytes, delivery_id: str, *, skip: int = 0) -> int:
        """Send the body; the status code on success, DeliveryError otherwise. `skip`: how
        many parts of a reply of several earlier attempts delivered (senders of one message
        per reply ignore it)."""
        ...


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: check the signature and that the timestamp is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


@dataclass
class HttpReplySender:
    secret: str
    timeout: float = 10.0
    allow_private: bool = False  # CALLBACK_ALLOW_PRIVATE: local development only
    verify: ssl.SSLContext | bool = True  # the trust store; tests pass their own

    def send(self, url: str, body: bytes, delivery_id: str, *, skip: int = 0) -> int:
        try:
            httpx.URL(url)  # what httpx cannot send is refused here, not raised mid-step
            destination = outbound.resolve(url, allow_private=self.allow_private)
        except (outbound.Refused, httpx.InvalidURL) as exc:
            raise DeliveryError(
                f"refused to deliver to the callback URL: {exc}", retryable=False
            ) from exc
        except outbound.Unresolved as exc:
            raise DeliveryError(f"could not reach the callback URL: {exc}", retryable=True) from exc
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
            DELIVERY_ID_HEADER: delivery_id,
            "User-Agent": "messagedb-agent-delivery",
        }
        status = self._post(destination, body, headers)
        if 200 <= status < 300:
            return status
        if 300 <= status < 400:
            raise DeliveryError(
                f"the callback URL answered {status}, a redirect, which is not followed",
                retryable=False,
                status_code=status,
            )
        retryable = status >= 500 or status in (408, 425, 429)
        raise DeliveryError(
            f"the callback URL answered {status}", retryable=retryable, status_code=status
        )

    def _post(self, destination: outbound.Destination, body: bytes, headers: dict[str, str]) -> int:
        """POST to the first checked address that takes the connection; its status.

        The answer's body is never read: only the status matters, and a receiver streaming
        an endless body must not hold the step or fill its memory.
        """
        target = httpx.URL(destination.url)
        headers = {**headers, "Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": destination.host} if target.scheme == "https" else {}
        failure: httpx.HTTPError | None = None
        # No proxy from the environment: it would resolve the name again, unchecked.
        with httpx.Client(
            timeout=self.timeout, verify=self.verify, trust_env=False, follow_redirects=False
        ) as client:
            for address in destination.addresses:
                request = client.build_request(
                    "POST",
                    target.copy_with(host=address),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                )
                try:
                    response = client.send(request, stream=True)
                    response.close()
                    return response.status_code
                except httpx.ConnectError as exc:
                    failure = exc  # refused or unreachable: the next address may answer
                except httpx.TimeoutException as exc:
                    raise DeliveryError(
                        f"timed out after {self.timeout:g}s", retryable=True
                    ) from exc
                except httpx.HTTPError as exc:
                    raise DeliveryError(
                        f"could not reach the callback URL: {exc}", retryable=True
                    ) from exc
        raise DeliveryError(f"could not reach the callback URL: {failure}", retryable=True)
