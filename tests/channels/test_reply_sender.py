"""The reply sender connects only to addresses it checked, as the URL's host, and never
follows a redirect."""

from __future__ import annotations

import contextlib
import datetime
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.channels.dns import FakeDns

from messagedb_agent.channels.callback import DeliveryError, HttpReplySender

SECRET = "reply-sender-secret"


class Hook:
    """A webhook on loopback, plain or TLS, that records what reached it."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(dict(self.headers.items()))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def serve_tls(self, certificate: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)

        def note(_: Any, server_name: str | None, __: Any) -> None:
            self.server_names.append(server_name)

        context.sni_callback = note
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)

    def start(self) -> Hook:
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` only (no IP address), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    started: list[Hook] = []
    yield started
    for hook in started:
        hook.close()


def test_a_name_resolved_once_is_called_at_that_address_as_its_host(
    dns: FakeDns, hooks: list[Hook]
) -> None:
    hook = Hook().start()
    hooks.append(hook)
    dns.once("hook.example", "127.0.0.1")  # a second lookup would find nothing
    sender = HttpReplySender(SECRET, timeout=5, allow_private=True)

    status = sender.send(f"http://hook.example:{hook.port}/reply", b"{}", "delivery-1")

    assert status == 200
    assert dns.lookups == ["hook.example"]
    [request] = hook.requests
    assert request["Host"] == f"hook.example:{hook.port}"


def test_tls_names_the_host_and_checks_its_certificate_while_connecting_to_the_checked_address(
    dns: FakeDns, hooks: list[Hook], tmp_path: Path
) -> None:
    certificate, key = self_signed(tmp_path, "hook.example")
    hook = Hook()
    hook.serve_tls(certificate, key)
    hooks.append(hook.start())
    dns.once("hook.example", "127.0.0.1")
    trust = ssl.create_default_context(cafile=str(certificate))
    sender = HttpReplySender(SECRET, timeout=5, allow_private=True, verify=trust)

    status = sender.send(f"https://hook.example:{hook.port}/reply", b"{}", "delivery-1")

    assert status == 200
    assert hook.server_names == ["hook.example"]
    assert hook.requests[0]["Host"] == f"hook.example:{hook.port}"


def test_a_certificate_for_another_name_is_refused_even_at_a_checked_address(
    dns: FakeDns, hooks: list[Hook], tmp_path: Path
) -> None:
    certificate, key = self_signed(tmp_path, "other.example")
    hook = Hook()
    hook.serve_tls(certificate, key)
    hooks.append(hook.start())
    dns.set("hook.example", "127.0.0.1")
    trust = ssl.create_default_context(cafile=str(certificate))
    sender = HttpReplySender(SECRET, timeout=5, allow_private=True, verify=trust)

    with pytest.raises(DeliveryError, match="could not reach") as refused:
        sender.send(f"https://hook.example:{hook.port}/reply", b"{}", "delivery-1")

    assert refused.value.retryable
    assert hook.requests == []


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "169.254.169.254", "::1"])
def test_a_name_that_resolves_to_an_internal_address_is_refused_for_good(
    dns: FakeDns, hooks: list[Hook], address: str
) -> None:
    hook = Hook().start()
    hooks.append(hook)
    dns.set("rebound.example", "93.184.216.34", address)
    sender = HttpReplySender(SECRET, timeout=5)

    with pytest.raises(DeliveryError) as refused:
        sender.send(f"https://rebound.example:{hook.port}/reply", b"{}", "delivery-1")

    assert not refused.value.retryable
    assert str(refused.value) == (
        f"refused to deliver to the callback URL: rebound.example resolves to {address}, "
        "which is not a public address"
    )
    assert hook.requests == []


def test_an_internal_address_in_the_url_is_refused_for_good(hooks: list[Hook]) -> None:
    hook = Hook().start()
    hooks.append(hook)

    with pytest.raises(DeliveryError) as refused:
        HttpReplySender(SECRET, timeout=5).send(
            f"http://127.0.0.1:{hook.port}/reply", b"{}", "delivery-1"
        )

    assert not refused.value.retryable
    assert "must be an https URL" in str(refused.value)
    assert hook.requests == []


def test_a_name_that_does_not_resolve_is_tried_again_later(dns: FakeDns) -> None:
    dns.set("gone.example")

    with pytest.raises(DeliveryError, match="does not resolve") as failed:
        HttpReplySender(SECRET, timeout=5).send("https://gone.example/reply", b"{}", "d")

    assert failed.value.retryable


def test_a_redirect_is_not_followed_and_ends_the_delivery(dns: FakeDns, hooks: list[Hook]) -> None:
    inside = Hook().start()
    redirecting = Hook(307, {"Location": f"http://127.0.0.1:{inside.port}/steal"}).start()
    hooks.extend([inside, redirecting])
    dns.set("hook.example", "127.0.0.1")
    sender = HttpReplySender(SECRET, timeout=5, allow_private=True)

    with pytest.raises(DeliveryError, match="a redirect, which is not followed") as failed:
        sender.send(f"http://hook.example:{redirecting.port}/reply", b"{}", "delivery-1")

    assert not failed.value.retryable
    assert failed.value.status_code == 307
    assert len(redirecting.requests) == 1
    assert inside.requests == []


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(
    dns: FakeDns, hooks: list[Hook]
) -> None:
    hook = Hook().start()
    hooks.append(hook)
    dns.set("hook.example", "127.0.0.2", "127.0.0.1")  # nothing listens on 127.0.0.2
    sender = HttpReplySender(SECRET, timeout=5, allow_private=True)

    assert sender.send(f"http://hook.example:{hook.port}/reply", b"{}", "delivery-1") == 200
    assert len(hook.requests) == 1


@pytest.mark.parametrize(
    "url", ["https://public.example/\x00", "https://public.example/?\x01", "https://x:99999/"]
)
def test_a_url_that_cannot_be_sent_is_a_final_failure_not_a_crash(dns: FakeDns, url: str) -> None:
    """Threads started before URLs were checked may hold such URLs; the step must go on."""
    dns.set("public.example", "93.184.216.34")

    with pytest.raises(DeliveryError, match="refused to deliver") as failed:
        HttpReplySender(SECRET, timeout=5).send(url, b"{}", "delivery-1")

    assert not failed.value.retryable


class EndlessHook(Hook):
    """Accepts the POST, then streams a body that would take minutes to end."""

    def __init__(self) -> None:
        super().__init__()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                deadline = time.monotonic() + 30
                with contextlib.suppress(OSError):
                    while time.monotonic() < deadline:
                        self.wfile.write(b"x" * 65536)

            def log_message(self, *args: Any) -> None:
                return None

        self.server.RequestHandlerClass = Handler


def test_the_answers_body_is_not_read(dns: FakeDns, hooks: list[Hook]) -> None:
    hook = EndlessHook().start()
    hooks.append(hook)
    dns.set("hook.example", "127.0.0.1")
    sender = HttpReplySender(SECRET, timeout=5, allow_private=True)
    started = time.monotonic()

    status = sender.send(f"http://hook.example:{hook.port}/reply", b"{}", "delivery-1")

    assert status == 200
    assert time.monotonic() - started < 5
