"""Google Chat through the ingest function's endpoint and the step function's deliveries, against
the local Google Chat (`fake_google_chat`): tokens signed as Chat signs them and events shaped
like its documented examples in (both formats), replies through the official `google-apps-chat`
client, authorised as a service account by google-auth, out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer
from tests.api.test_user_stories import Stepping
from tests.channels.fake_google_chat import (
    ADDON_CALLER,
    CHAT_BOT_SCOPE,
    DM,
    ENDPOINT_URL,
    MESSAGE_BYTES,
    PROJECT_NUMBER,
    ROOM,
    FakeGoogleChat,
    Posted,
    added_event,
    click_event,
    headers,
    message_event,
    removed_event,
)
from tests.channels.models import SLOW_ANSWER, Answering
from tests.llm.fake_google_auth import FakeTokenEndpoint

from messagedb_agent.channels.google_chat import no_mentions, parts, request_id
from messagedb_agent.events.ids import channel_key, channel_user, idempotent_thread_id
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread

EVENTS = "/v1/channels/google-chat/events"


@pytest.fixture
def oauth() -> Iterator[FakeTokenEndpoint]:
    server = FakeTokenEndpoint(required_scope=CHAT_BOT_SCOPE).start()
    yield server
    server.stop()


@pytest.fixture
def chat(
    oauth: FakeTokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeGoogleChat]:
    """The local Chat, and the function's service account as google-auth finds it (ADC)."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(oauth.service_account_file(tmp_path)))
    server = FakeGoogleChat(
        accepts=lambda token: (
            oauth.accepts(token) or oauth.accepts_self_signed(token, CHAT_BOT_SCOPE)
        )
    ).start()
    yield server
    server.stop()


@pytest.fixture
def chat_settings(settings: Settings, chat: FakeGoogleChat) -> Settings:
    return settings.replace(
        google_chat_audience=PROJECT_NUMBER,
        google_chat_keys_url=chat.chat_keys_url,
        google_chat_api_endpoint=chat.url,
        tools_requiring_approval="delete_task",
    )


@pytest.fixture
def addon_settings(settings: Settings, chat: FakeGoogleChat) -> Settings:
    """An app built as a Workspace add-on: endpoint-URL audience, its own caller."""
    return settings.replace(
        google_chat_audience=ENDPOINT_URL,
        google_chat_caller=ADDON_CALLER,
        google_chat_keys_url=chat.google_keys_url,
        google_chat_api_endpoint=chat.url,
        tools_requiring_approval="delete_task",
    )


@pytest.fixture
def stepping(store: MessageStore, chat_settings: Settings) -> Iterator[Stepping]:
    publisher = Stepping(build_engine(chat_settings, store, OfflineModel()))
    yield publisher
    publisher.join()


@pytest.fixture
def app(make_api: MakeApi, stepping: Stepping, chat_settings: Settings) -> Iterator[FlaskClient]:
    with make_api(stepping, core=chat_settings).flask_app().test_client() as client:
        yield client


def send(app: FlaskClient, event: dict[str, Any], token: str) -> Any:
    return app.post(EVENTS, data=json.dumps(event), headers=headers(token))


def posted(chat: FakeGoogleChat, space: str, count: int, timeout: float = 20.0) -> list[Posted]:
    deadline = time.monotonic() + timeout
    while len(found := chat.in_space(space)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} messages: {found}"
        time.sleep(0.05)
    return found


def events_of(store: MessageStore, person: str, space: str, thread: str = "-") -> list[Any]:
    user = channel_user("google-chat", "users", person)
    key = channel_key("google-chat", space, thread)
    stream = names.in_shard(idempotent_thread_id(user, key), names.DEFAULT_THREAD_SHARDS)
    return read_thread(store, names.thread_stream(stream))


def test_a_dm_conversation_with_a_tool_call_is_answered_in_the_dm(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore, stepping: Stepping
) -> None:
    answered = send(app, message_event("add a task to buy milk", person="501", space=DM),
                    chat.project_token())  # fmt: skip
    assert answered.status_code == 200
    assert answered.get_json() == {}  # answered later, through the API
    [reply] = posted(chat, DM, 1)
    assert "buy milk" in reply.text
    assert reply.message["markupSyntax"] in ("MARKUP_SYNTAX_MARKDOWN", 2)
    assert "thread" not in reply.message  # a DM: no thread to keep
    assert reply.reply_option == 0
    stepping.join()
    types = [e.type for e in events_of(store, "501", DM)]
    assert "ToolExecutionCompleted" in types
    assert types.count("ReplyDelivered") == 1


def test_an_add_on_event_in_a_space_is_answered_in_its_thread(
    make_api: MakeApi, store: MessageStore, chat: FakeGoogleChat, addon_settings: Settings
) -> None:
    stepping = Stepping(build_engine(addon_settings, store, OfflineModel()))
    token = chat.url_token(email=ADDON_CALLER)
    with make_api(stepping, core=addon_settings).flask_app().test_client() as app:
        event = message_event("what is 6*7?", person="502", thread="T502", addon=True)
        assert send(app, event, token).status_code == 200
        [reply] = posted(chat, ROOM, 1)
    stepping.join()
    assert "42" in reply.text
    assert reply.thread == "T502"  # kept in the person's thread: the reply option was set
    assert reply.reply_option == 1  # REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD
    said = [e for e in events_of(store, "502", ROOM, "T502") if e.type == "UserMessageAdded"]
    assert [e.event.message for e in said] == ["what is 6*7?"]  # the mention stripped


def test_the_same_event_four_times_at_once_is_appended_and_answered_once(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore, stepping: Stepping
) -> None:
    event, token = message_event("what is 2+3?", person="503", thread="T503"), chat.project_token()

    def deliver(_: int) -> int:
        with app.application.test_client() as own:
            return int(send(own, event, token).status_code)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(deliver, range(4))) == [200] * 4
    [reply] = posted(chat, ROOM, 1)
    assert "5" in reply.text
    stepping.join()
    time.sleep(0.3)
    assert len(chat.in_space(ROOM)) == 1
    types = [e.type for e in events_of(store, "503", ROOM, "T503")]
    assert types.count("UserMessageAdded") == 1


TOKENS = {
    "missing": lambda chat: "",
    "another project": lambda chat: chat.project_token(audience="999999999999"),
    "expired": lambda chat: chat.project_token(
        iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
    ),
    "another issuer": lambda chat: chat.project_token(iss="someone@evil.example"),
    "not google's key": lambda chat: FakeGoogleChat().project_token(),
    "an oidc token": lambda chat: chat.url_token(audience=PROJECT_NUMBER),
}


@pytest.mark.parametrize("forged", TOKENS.values(), ids=TOKENS.keys())
def test_a_request_without_chats_own_token_is_refused_and_appends_nothing(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore, forged: Any
) -> None:
    answered = send(app, message_event("hi", person="504", space=DM), forged(chat))
    assert answered.status_code == 401
    assert events_of(store, "504", DM) == []


URL_TOKENS = {
    "any google account": lambda chat: chat.url_token(email="mallory@gmail.com"),
    "chat itself, for an add-on": lambda chat: chat.url_token(),
    "unverified email": lambda chat: chat.url_token(email=ADDON_CALLER, email_verified=False),
    "another url": lambda chat: chat.url_token(
        audience="https://evil.example/hook", email=ADDON_CALLER
    ),
    "a project token": lambda chat: chat.project_token(audience=ENDPOINT_URL),
}


@pytest.mark.parametrize("forged", URL_TOKENS.values(), ids=URL_TOKENS.keys())
def test_with_an_endpoint_audience_only_the_configured_caller_is_taken(
    make_api: MakeApi, chat: FakeGoogleChat, store: MessageStore, addon_settings: Settings,
    forged: Any,
) -> None:  # fmt: skip
    with make_api(core=addon_settings).flask_app().test_client() as app:
        event = message_event("hi", person="505", space=DM, addon=True)
        assert send(app, event, forged(chat)).status_code == 401
    assert events_of(store, "505", DM) == []


def test_googles_keys_are_fetched_once_for_many_requests_and_forgeries_cannot_force_more(
    app: FlaskClient, chat: FakeGoogleChat, stepping: Stepping
) -> None:
    for n in range(5):
        event = message_event(f"what is {n}+1?", person="506", space=DM)
        assert send(app, event, chat.project_token()).status_code == 200
    stranger = FakeGoogleChat()  # keys Google never published: an unknown `kid` each time
    for _ in range(5):
        assert send(app, message_event("hi", space=DM), stranger.project_token()).status_code == 401
    assert chat.key_fetches == 1  # an unknown key id refetches at most once in 30 s


def test_an_outage_during_delivery_is_retried_and_the_reply_posted_once(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore, stepping: Stepping
) -> None:
    chat.fail(503)
    chat.fail(429, "Resource has been exhausted (e.g. check quota).")
    send(app, message_event("what is 2+2?", person="507", space=DM), chat.project_token())
    [reply] = posted(chat, DM, 1, timeout=30)
    assert "4" in reply.text
    stepping.join()
    types = [e.type for e in events_of(store, "507", DM)]
    assert types.count("ReplyDeliveryFailed") == 2
    assert types.count("ReplyDelivered") == 1


# longer than one Chat message holds
LONG = "## Report\n\n" + "\n".join(f"- **item {i}**: {'wörd ' * 40}" for i in range(400))


def test_a_long_reply_is_several_messages_and_a_retry_reposts_none_of_them(
    make_api: MakeApi, store: MessageStore, chat: FakeGoogleChat, chat_settings: Settings
) -> None:
    expected = parts(LONG)
    assert len(LONG.encode()) > 2 * MESSAGE_BYTES
    assert len(expected) >= 3
    stepping = Stepping(build_engine(chat_settings, store, Answering(LONG)))
    original = chat._create
    calls = {"n": 0}

    def second_part_fails_once(*args: Any) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 2:  # the first part is posted, then the delivery fails
            return 503, {"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}}
        return original(*args)

    chat._create = second_part_fails_once  # type: ignore[method-assign]
    with make_api(stepping, core=chat_settings).flask_app().test_client() as app:
        send(app, message_event("report, please", person="508", space=DM), chat.project_token())
        found = posted(chat, DM, len(expected), timeout=30)
    stepping.join()
    time.sleep(0.2)
    assert [p.text for p in chat.in_space(DM)] == expected  # each part once, in order
    assert all(len(p.text.encode()) < MESSAGE_BYTES for p in found)
    types = [e.type for e in events_of(store, "508", DM)]
    assert (types.count("ReplyDeliveryFailed"), types.count("ReplyDelivered")) == (1, 1)


@pytest.mark.parametrize("deleted", [False, True], ids=["kept", "deleted meanwhile"])
def test_a_long_turn_says_it_is_working_and_the_reply_replaces_that_message(
    make_api: MakeApi, store: MessageStore, chat: FakeGoogleChat, chat_settings: Settings,
    deleted: bool,
) -> None:  # fmt: skip
    settings = chat_settings.replace(busy_notice_seconds=0.3)
    person, thread = f"7{int(deleted)}1", f"TSLOW{int(deleted)}"
    stepping = Stepping(
        build_engine(settings, store, Answering(SLOW_ANSWER, 2.5))
    )  # the client loads in ~1 s
    with make_api(stepping, core=settings).flask_app().test_client() as app:
        send(app, message_event("think hard", person=person, thread=thread), chat.project_token())
        [notice] = posted(chat, ROOM, 1)
        assert notice.text == "Working on it…"
        assert notice.thread == thread
        if deleted:
            chat.delete(notice)  # a person removes it before the reply comes
        stepping.join()
    [reply] = chat.in_space(ROOM)
    assert reply.text == SLOW_ANSWER
    assert reply.thread == thread
    assert (reply.name == notice.name) is not deleted  # replaced in place, or posted anew
    events = events_of(store, person, ROOM, thread)
    assert [e.event.reference for e in events if e.type == "BusyNoticePosted"] == [
        f"spaces/{ROOM}/messages/{notice.name}"
    ]
    assert [e.type for e in events].count("ReplyDelivered") == 1


def test_two_people_in_one_thread_each_have_their_own_conversation(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore, stepping: Stepping
) -> None:
    token = chat.project_token()
    send(app, message_event("add a task to feed the zebra", person="601", thread="TSHARED"), token)
    posted(chat, ROOM, 1)
    send(app, message_event("list my tasks", person="602", thread="TSHARED"), token)
    second = posted(chat, ROOM, 2)[-1]
    stepping.join()
    assert "zebra" not in second.text
    hers, his = events_of(store, "601", ROOM, "TSHARED"), events_of(store, "602", ROOM, "TSHARED")
    assert hers
    assert his
    assert hers[0].stream_name != his[0].stream_name


@pytest.mark.parametrize("addon", [False, True], ids=["chat api", "add-on"])
def test_being_added_to_a_space_is_answered_with_a_greeting_and_removal_needs_nothing(
    make_api: MakeApi, chat: FakeGoogleChat, chat_settings: Settings, addon_settings: Settings,
    addon: bool,
) -> None:  # fmt: skip
    settings = addon_settings if addon else chat_settings
    token = chat.url_token(email=ADDON_CALLER) if addon else chat.project_token()
    with make_api(core=settings).flask_app().test_client() as app:
        greeted = send(app, added_event(addon=addon), token)
        removed = send(app, removed_event(addon=addon), token)
    assert greeted.status_code == removed.status_code == 200
    body = greeted.get_json()
    if addon:
        body = body["hostAppDataAction"]["chatDataAction"]["createMessageAction"]["message"]
    assert "Hi!" in body["text"]
    assert removed.get_json() == {}


def test_messages_from_bots_are_ignored(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore
) -> None:
    event = message_event("add a task", person="509", space=DM, bot=True)
    assert send(app, event, chat.project_token()).status_code == 200
    assert events_of(store, "509", DM) == []


def test_an_approval_is_asked_with_card_buttons_and_only_the_owner_can_answer(
    app: FlaskClient, chat: FakeGoogleChat, store: MessageStore, stepping: Stepping
) -> None:
    token = chat.project_token()
    send(app, message_event("add a task to buy milk", person="510", space=DM), token)
    posted(chat, DM, 1)
    send(app, message_event("delete task 1", person="510", space=DM), token)
    asked = posted(chat, DM, 2)[-1]
    [card] = asked.message["cardsV2"]
    buttons = card["card"]["sections"][0]["widgets"][1]["buttonList"]["buttons"]
    approve = buttons[0]["onClick"]["action"]
    assert [b["text"] for b in buttons] == ["Approve", "Decline"]
    parameters = {p["key"]: p["value"] for p in approve["parameters"]}

    stranger = send(app, click_event(parameters, person="666", space=DM), token)
    assert stranger.status_code == 200
    assert "isn't yours" in stranger.get_json()["text"]
    forged = send(app, click_event(parameters, person="510", space=DM), "not-a-token")
    assert forged.status_code == 401
    time.sleep(0.3)
    assert len(chat.in_space(DM)) == 2  # neither decided anything

    clicked = send(app, click_event(parameters, person="510", space=DM), token)
    assert clicked.get_json() == {"text": "Approved."}
    done = posted(chat, DM, 3)[-1]
    assert "delet" in done.text.lower()
    stepping.join()
    granted = [e for e in events_of(store, "510", DM) if e.type == "ToolApprovalGranted"]
    assert [e.event.decided_by for e in granted] == [channel_user("google-chat", "users", "510")]


def test_an_add_on_apps_approval_card_invokes_its_endpoint_and_the_click_is_decided(
    make_api: MakeApi, store: MessageStore, chat: FakeGoogleChat, addon_settings: Settings
) -> None:
    stepping = Stepping(build_engine(addon_settings, store, OfflineModel()))
    token = chat.url_token(email=ADDON_CALLER)
    with make_api(stepping, core=addon_settings).flask_app().test_client() as app:
        send(
            app, message_event("add a task to buy milk", person="511", space=DM, addon=True), token
        )
        posted(chat, DM, 1)
        send(app, message_event("delete task 1", person="511", space=DM, addon=True), token)
        asked = posted(chat, DM, 2)[-1]
        [card] = asked.message["cardsV2"]
        buttons = card["card"]["sections"][0]["widgets"][1]["buttonList"]["buttons"]
        action = buttons[1]["onClick"]["action"]  # Decline
        assert action["function"] == ENDPOINT_URL  # an add-on's buttons call its endpoint
        parameters = {p["key"]: p["value"] for p in action["parameters"]}
        click = click_event(parameters, person="511", space=DM, addon=True)
        clicked = send(app, click, token)
        message = clicked.get_json()["hostAppDataAction"]["chatDataAction"]
        assert message["createMessageAction"]["message"]["text"] == "Declined."
        posted(chat, DM, 3)
    stepping.join()
    denied = [e for e in events_of(store, "511", DM) if e.type == "ToolApprovalDenied"]
    assert [e.event.decided_by for e in denied] == [channel_user("google-chat", "users", "511")]


def test_a_person_over_the_rate_limit_is_told_so_in_the_answer_and_nothing_is_appended(
    make_api: MakeApi, store: MessageStore, chat: FakeGoogleChat, chat_settings: Settings
) -> None:
    limited = make_api(core=chat_settings, rate_limit_per_minute=1, rate_limit_burst=1)
    with limited.flask_app().test_client() as app:
        token = chat.project_token()
        assert send(app, message_event("first", person="512", space=DM), token).get_json() == {}
        told = send(app, message_event("second, too soon", person="512", space=DM), token)
    assert told.status_code == 200
    assert "faster than I can keep up" in told.get_json()["text"]
    said = [e.event.message for e in events_of(store, "512", DM) if e.type == "UserMessageAdded"]
    assert said == ["first"]


def test_a_disabled_channel_is_not_there(make_api: MakeApi, chat: FakeGoogleChat) -> None:
    with make_api().flask_app().test_client() as app:
        event = message_event("hi", space=DM)
        assert send(app, event, chat.project_token()).status_code == 404


def test_an_api_token_can_never_act_as_a_google_chat_user(make_api: MakeApi) -> None:
    with make_api().flask_app().test_client() as app:
        refused = app.get("/v1/threads", headers=bearer(channel_user("google-chat", "users", "1")))
    assert refused.status_code == 401


def test_what_a_client_gets_wrong_at_the_endpoint_is_a_clear_4xx(
    app: FlaskClient, chat: FakeGoogleChat
) -> None:
    auth = headers(chat.project_token())
    assert app.post(EVENTS, data=b"{not json", headers=auth).status_code == 400
    assert app.post(EVENTS, data=b"[1]", headers=auth).status_code == 400
    assert app.get(EVENTS).status_code == 405
    odd = {"type": "MESSAGE", "message": {"name": "../../etc", "text": "hi"}, "space": {}}
    assert app.post(EVENTS, data=json.dumps(odd), headers=auth).status_code == 200
    for person in (" 1", "1\u0000", "a:b", "1/2", ""):  # ids no platform user can have
        spaced = message_event("hi", person="0", space=DM)
        spaced["message"]["sender"]["name"] = spaced["user"]["name"] = f"users/{person}"
        assert app.post(EVENTS, data=json.dumps(spaced), headers=auth).status_code == 200
        clicked = click_event({"decision": "approve", "thread": "t", "call": "c"}, person="0")
        clicked["user"]["name"] = f"users/{person}"
        assert app.post(EVENTS, data=json.dumps(clicked), headers=auth).status_code == 200


def test_a_reply_cannot_mention_everyone_and_each_part_has_its_own_request_id() -> None:
    assert "<users/all>" not in no_mentions("hey <users/all> and <users/123>")
    assert request_id("d1", 0) == request_id("d1", 0) != request_id("d1", 1)
    assert request_id("d1", 0) != request_id("d2", 0)
    assert all(len(p.encode()) <= MESSAGE_BYTES for p in parts("é" * 50_000))
