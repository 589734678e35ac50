"""`messagedb-agent token`: development tokens signed with the checkout's own secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from messagedb_agent.api.auth import Authenticator
from messagedb_agent.cli import app, parse_ttl
from messagedb_agent.settings import Settings
from messagedb_agent.settings.serving import DEV_AUTH_SECRET, checkout_dev_secret

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh checkout: no secret configured, no `.env`, its own state folder."""
    monkeypatch.chdir(tmp_path)
    for name in ("JWT_HS256_SECRET", "DEV_AUTH_SECRET", "JWT_ISSUER", "K_SERVICE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("JWT_PUBLIC_KEY", "JWT_JWKS_URL", "JWT_AUDIENCE", "ALLOW_DEV_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESSAGEDB_AGENT_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def _api_accepting(home: Path) -> Authenticator:
    """The API's dev auth as the local stack configures it for this checkout."""
    env = {"DEV_AUTH_SECRET": checkout_dev_secret(home)}
    return Authenticator(Settings(**env).api)


def test_the_checkout_secret_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = checkout_dev_secret(tmp_path / "state")
    path = tmp_path / "state" / "dev-auth-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert first != DEV_AUTH_SECRET
    assert checkout_dev_secret(tmp_path / "state") == first
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["dev-auth-secret"]
    assert checkout_dev_secret(tmp_path / "other") != first


def test_the_printed_token_signs_in_as_the_user(home: Path) -> None:
    result = runner.invoke(app, ["token", "--user", "alice", "--ttl", "2h"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert _api_accepting(home).user_of(f"Bearer {token}") == "alice"
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 2 * 3600


def test_an_explicit_shared_secret_signs_the_token(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_HS256_SECRET", "s" * 40)
    result = runner.invoke(app, ["token", "--user", "bob"])
    assert result.exit_code == 0, result.output
    api = Authenticator(Settings().api)
    assert api.user_of(f"Bearer {result.stdout.strip()}") == "bob"
    assert not (home / "dev-auth-secret").exists()


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("K_SERVICE", "ingest", "K_SERVICE is set"),
        ("JWT_ISSUER", "https://accounts.example.com", "JWT_ISSUER is set"),
        ("JWT_JWKS_URL", "https://accounts.example.com/jwks", "RS256"),
    ],
)
def test_it_refuses_outside_local_development(
    home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["token", "--user", "alice"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert reason in result.stderr
    assert not (home / "dev-auth-secret").exists()


def test_a_user_id_the_api_would_refuse_is_refused(home: Path) -> None:
    result = runner.invoke(app, ["token", "--user", " alice"])
    assert result.exit_code == 1
    assert "space" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("30m", 1800), ("90s", 90), ("7d", 604800), ("60", 60)]
)
def test_lifetimes_are_read_as_written(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "h", "1.5h", "-1h", "3w"])
def test_a_lifetime_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--ttl"):
        parse_ttl(text)
