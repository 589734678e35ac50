"""Which user ids (a token's `sub`) the API accepts, and the answer for the others."""

from __future__ import annotations

import time

import jwt
import pytest
from flask.testing import FlaskClient
from tests.api.conftest import SECRET

from messagedb_agent.api import issue_dev_token
from messagedb_agent.events.ids import MAX_USER_ID_LENGTH, user_id_problem

ACCEPTED = [
    "alice",
    "auth0|5f3c9a",
    "alice@example.com",
    "google-oauth2|1234567890",
    "a b",
    "user/with/slashes",
    "Zoë",
    "用户",
    "émile+tag",
    "x",
    "x" * MAX_USER_ID_LENGTH,
]
REFUSED = [
    "",
    " ",
    " alice",
    "alice ",
    "a\x00b",
    "\x00",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x1bb",
    "a\x7fb",
    "a\x85b",  # C1 control (next line)
    "a\u2028b",  # line separator
    "a\u202eb",  # right-to-left override
    "a\u200bb",  # zero-width space
    "a\ud800b",  # a lone surrogate, which JSON can carry
    "a\ue000b",  # private use
    "x" * (MAX_USER_ID_LENGTH + 1),
]


def raw_token(sub: object) -> dict[str, str]:
    """A token signed with the API's secret, whatever its `sub` (`issue_dev_token` refuses)."""
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("sub", ACCEPTED)
def test_printable_user_ids_of_any_script_up_to_the_limit_are_accepted(
    client: FlaskClient, sub: str
) -> None:
    suffix = str(time.monotonic_ns())  # a fresh user each run, keeping the id's shape
    user = sub if len(sub) == MAX_USER_ID_LENGTH else f"{sub}-{suffix}"

    created = client.post("/v1/threads", json={"message": "hi"}, headers=raw_token(user))
    listed = client.get("/v1/threads", headers=raw_token(user))

    assert created.status_code == 201, created.get_json()
    assert listed.status_code == 200
    threads = listed.get_json()["threads"]
    assert created.get_json()["thread_id"] in [t["thread_id"] for t in threads]


@pytest.mark.parametrize("sub", REFUSED)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_other_user_ids_are_refused_with_401_and_a_clear_message(
    client: FlaskClient, sub: str, method: str
) -> None:
    response = client.open(
        "/v1/threads", method=method, json={"message": "hi"}, headers=raw_token(sub)
    )

    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "unauthorized"
    assert error["message"] == (
        "Your sign-in names a user id I can't accept: it must be 1 to 255 printable "
        "characters, with no control characters or surrounding spaces."
    )
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("sub", [42, None, ["alice"], {"id": "alice"}])
def test_a_sub_that_is_not_a_string_is_not_verified(client: FlaskClient, sub: object) -> None:
    response = client.get("/v1/threads", headers=raw_token(sub))

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("sub", REFUSED)
def test_development_tokens_are_never_minted_for_a_refused_user_id(sub: str) -> None:
    with pytest.raises(ValueError, match="cannot sign in"):
        issue_dev_token(sub, SECRET)


def test_the_rule_says_what_is_wrong() -> None:
    assert user_id_problem("alice") is None
    assert user_id_problem("") == "the user id is empty"
    assert (
        user_id_problem("a\x00") == "the user id contains a control or other unprintable character"
    )
    assert user_id_problem(" a") == "the user id starts or ends with a space"
    assert user_id_problem("x" * 256) == "the user id is longer than 255 characters"
