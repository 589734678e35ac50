"""Where the agent may send a request a caller asked for: public internet addresses only.

Whoever starts a thread names its callback URL, and the step function POSTs to it from inside
the deployment's network. Left unchecked, `https://169.254.169.254/` (the metadata server),
`10.x` or `localhost` would let any caller make the agent talk to internal services (SSRF).
So a URL is checked when a thread is created (a clear refusal up front) and again at every
delivery, after resolving its host: a name that was public at creation may point somewhere
private by then (DNS rebinding). The delivery then connects to the very addresses checked
here, never resolving the name a second time.

`allow_private` (CALLBACK_ALLOW_PRIVATE) lets local development call a receiver on its own
machine; it also allows plain http, which carries the reply unencrypted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# RFC 6052's well-known NAT64 prefix: the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# RFC 8215's local-use NAT64 prefix: translates into whatever network the operator chose.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class Refused(ValueError):
    """The URL may not be called: its form, or an address it leads to. Retrying cannot help."""


class Unresolved(OSError):
    """The host name does not resolve right now; it may later."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL whose every address was checked: connect to `addresses`, name `host` in the
    Host header and TLS SNI."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def is_public(address: Address) -> bool:
    """Whether an address is on the public internet, embedded IPv4 addresses included.

    `is_global` alone is not enough (Python 3.11 counts multicast and 6to4 wrappers of
    private addresses as global), so multicast and reserved ranges are refused too, and an
    IPv6 address carrying an IPv4 one (mapped, NAT64, 6to4) is judged by the IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if address in _LOCAL_NAT64 or address.is_site_local or address.teredo is not None:
            return False
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_private
        and not address.is_unspecified
        and not address.is_loopback
        and not address.is_link_local
    )


def refusal(url: str, *, allow_private: bool) -> str | None:
    """Why a thread may not have this callback URL, or None.

    A host that does not resolve right now is accepted: the check that counts runs again at
    each delivery, and a passing DNS failure should not refuse a good URL.
    """
    try:
        resolve(url, allow_private=allow_private)
    except Refused as exc:
        return str(exc)
    except Unresolved:
        return None
    return None


def resolve(url: str, *, allow_private: bool) -> Destination:
    """The URL's host and the addresses to connect to, every one of them checked.

    Raises Refused (for good) or Unresolved (for now).
    """
    parts = _parse(url, allow_private)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:
        if not allow_private and not is_public(literal):
            raise Refused(f"{literal} is not a public internet address")
        return Destination(url, host, port, (str(literal),))
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise Refused(f"{host} is this machine, not a public internet address")
    addresses = _addresses(host, port)
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise Refused(f"{host} resolves to {address}, which is not a public address")
    return Destination(url, host, port, tuple(str(a) for a in addresses))


def _parse(url: str, allow_private: bool) -> SplitResult:
    schemes = ("https", "http") if allow_private else ("https",)
    expected = "an https or http URL" if allow_private else "an https URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        raise Refused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        raise Refused("must be a valid URL") from exc
    if parts.scheme not in schemes:
        raise Refused(f"must be {expected}")
    if parts.username is not None or parts.password is not None:
        raise Refused("must not carry a user name or password")
    if port == 0:
        raise Refused("must not name port 0")
    host = parts.hostname or ""
    if _literal(host) is None and not _valid_name(host):
        raise Refused("must name a valid host")
    return parts


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _valid_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _addresses(host: str, port: int) -> list[Address]:
    """Every address the host resolves to, in the resolver's order, without repeats."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolved(f"{host} does not resolve: {exc}") from exc
    addresses: list[Address] = []
    for *_, sockaddr in found:
        text = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is not kept
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise Refused(f"{host} resolves to {text!r}, which is not an address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolved(f"{host} has no addresses")
    return addresses
