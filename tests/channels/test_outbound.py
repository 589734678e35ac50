"""Which URLs the agent may call for a caller: public internet addresses only, checked after
resolving the host."""

from __future__ import annotations

import ipaddress

import pytest
from tests.channels.dns import FakeDns

from messagedb_agent.channels import outbound

INTERNAL = [
    "127.0.0.1",  # loopback
    "127.255.0.9",
    "10.0.0.1",  # private
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local: the cloud metadata server
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104 - unspecified: this machine
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "255.255.255.255",  # broadcast
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
    "::1",  # IPv6 loopback
    "::",  # IPv6 unspecified
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fe80::1",  # link-local
    "fec0::1",  # site-local
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]
PUBLIC = [
    "8.8.8.8",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not outbound.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert outbound.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest", "169.254.169.254 is not a public internet address"),
        ("https://10.0.0.1/hook", "10.0.0.1 is not a public internet address"),
        ("https://[::1]/hook", "::1 is not a public internet address"),
        ("https://[::ffff:a9fe:a9fe]/", "::ffff:a9fe:a9fe is not a public internet address"),
        ("https://[fd00::1]:8443/", "fd00::1 is not a public internet address"),
        ("https://localhost/hook", "localhost is this machine, not a public internet address"),
        ("https://api.localhost/", "api.localhost is this machine, not a public internet address"),
        ("https://2130706433/", "2130706433 resolves to 127.0.0.1, which is not a public address"),
        ("https://127.1/", "127.1 resolves to 127.0.0.1, which is not a public address"),
        ("https://0x7f.1/", "0x7f.1 resolves to 127.0.0.1, which is not a public address"),
        ("https://0/", "0 resolves to 0.0.0.0, which is not a public address"),
        ("https://internal.example/", "internal.example resolves to 10.1.2.3, which is not"),
        ("https://mixed.example/", "mixed.example resolves to 192.168.0.7, which is not"),
        ("https://metadata.example/", "metadata.example resolves to fe80::1, which is not"),
        ("http://public.example/hook", "must be an https URL"),
        ("ftp://public.example/hook", "must be an https URL"),
        ("https://user:pw@public.example/", "must not carry a user name or password"),
        ("https://public.example:0/", "must not name port 0"),
        ("https://public.example:99999/", "must be a valid URL"),
        ("https://a..b/", "must name a valid host"),
        ("https://-a.example/", "must name a valid host"),
        ("https:///path", "must name a valid host"),
        ("https://public.example/\x00", "must not contain spaces or control characters"),
        ("https://public.example/?q=\x01", "must not contain spaces or control characters"),
        ("https://public.example/#\x7f", "must not contain spaces or control characters"),
        ("https://public.example/a\x85b", "must not contain spaces or control characters"),
        ("https://public.example/a b", "must not contain spaces or control characters"),
        ("https://public.example/\u2028", "must not contain spaces or control characters"),
    ],
)
def test_urls_leading_anywhere_but_the_public_internet_are_refused(
    dns: FakeDns, url: str, reason: str
) -> None:
    dns.set("internal.example", "10.1.2.3")
    dns.set("mixed.example", "93.184.216.34", "192.168.0.7")
    dns.set("metadata.example", "fe80::1%eth0")
    dns.set("public.example", "93.184.216.34")

    refused = outbound.refusal(url, allow_private=False)

    assert refused is not None
    assert refused.startswith(reason)


def test_a_public_name_is_resolved_to_its_checked_addresses(dns: FakeDns) -> None:
    dns.set("public.example", "93.184.216.34", "2606:2800:220:1::1")

    found = outbound.resolve("https://public.example:8443/hook?x=1", allow_private=False)

    assert found.host == "public.example"
    assert found.port == 8443
    assert found.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert outbound.refusal("https://public.example/hook", allow_private=False) is None


def test_a_name_that_does_not_resolve_now_is_accepted_at_creation_but_not_resolved(
    dns: FakeDns,
) -> None:
    """Creation cannot know it is bad; each delivery resolves it again and checks."""
    dns.set("later.example")

    assert outbound.refusal("https://later.example/hook", allow_private=False) is None
    with pytest.raises(outbound.Unresolved):
        outbound.resolve("https://later.example/hook", allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.0.0.1/hook",
        "https://internal.example/hook",
        "http://public.example/hook",
    ],
)
def test_private_addresses_and_plain_http_are_allowed_for_local_work(
    dns: FakeDns, url: str
) -> None:
    dns.set("internal.example", "10.1.2.3")
    dns.set("public.example", "93.184.216.34")

    assert outbound.refusal(url, allow_private=True) is None
    assert outbound.refusal(url, allow_private=False) is not None


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "https://a..b/", "http://u@localhost/"])
def test_local_work_still_needs_a_well_formed_web_url(url: str) -> None:
    assert outbound.refusal(url, allow_private=True) is not None
