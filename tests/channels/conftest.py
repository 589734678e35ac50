"""Fixtures for outbound requests: a resolver the test controls."""

from __future__ import annotations

import pytest
from tests.channels.dns import FakeDns, install_fake_dns


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    return install_fake_dns(monkeypatch)
