"""Fixtures for channels: a resolver the test controls, and APIs serving the endpoints."""

from __future__ import annotations

import pytest
from tests.api.conftest import make_api  # noqa: F401 -- the API fixture, for the channels' endpoints
from tests.channels.dns import FakeDns, install_fake_dns


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    return install_fake_dns(monkeypatch)
