"""Telegram through the ingest function's webhook and the step function's deliveries, against
the local Bot API (`fake_telegram`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi
from tests.api.test_user_stories import Stepping
from tests.channels.fake_telegram import (
    BOT_ID,
    GROUP,
    PRIVATE_CHAT,
    SECRET,
    TOKEN,
    TOPIC,
    FakeTelegram,
    callback_update,
    headers,
    text_update,
)
from tests.channels.models import Answering

from messagedb_agent.channels.telegram import formatted
from messagedb_agent.events.ids import channel_key, channel_user, idempotent_thread_id
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread

WEBHOOK = "/v1/channels/telegram/webhook"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def tg_settings(settings: Settings, telegram: FakeTelegram) -> Settings:
    return settings.replace(
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=SECRET,
        telegram_api_url=telegram.url,
        tools_requiring_approval="delete_task",
    )


@pytest.fixture
def stepping(store: MessageStore, tg_settings: Settings) -> Iterator[Stepping]:
    publisher = Stepping(build_engine(tg_settings, store, OfflineModel()))
    yield publisher
    publisher.join()


@pytest.fixture
def app(make_api: MakeApi, stepping: Stepping, tg_settings: Settings) -> Iterator[FlaskClient]:
    with make_api(stepping, core=tg_settings).flask_app().test_client() as client:
        yield client


def post(app: FlaskClient, update: dict[str, Any], secret: str = SECRET) -> Any:
    return app.post(WEBHOOK, data=json.dumps(update), headers=headers(secret))


def sent_messages(telegram: FakeTelegram, chat: int, count: int, timeout: float = 20) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(found := [s for s in telegram.in_chat(chat) if s.method == "sendmessage"]) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def events_of(store: MessageStore, user: int, chat: int, where: str = "-") -> list[Any]:
    owner = channel_user("telegram", str(BOT_ID), str(user))
    key = channel_key("telegram", str(BOT_ID), str(chat), where)
    thread = names.in_shard(idempotent_thread_id(owner, key), names.DEFAULT_THREAD_SHARDS)
    return read_thread(store, names.thread_stream(thread))


def test_a_private_conversation_with_a_tool_call_is_answered_and_typing_shown(
    app: FlaskClient, telegram: FakeTelegram, store: MessageStore, stepping: Stepping
) -> None:
    answered = post(app, text_update("add a task to buy milk", user=501))
    assert answered.status_code == 200
    assert answered.get_json() == {
        "method": "sendChatAction",
        "chat_id": PRIVATE_CHAT,
        "action": "typing",
    }
    [reply] = sent_messages(telegram, PRIVATE_CHAT, 1)
    assert "buy milk" in reply.text
    stepping.join()
    types = [e.type for e in events_of(store, 501, PRIVATE_CHAT)]
    assert "ToolExecutionCompleted" in types
    assert types.count("ReplyDelivered") == 1
    # "typing…" again before each model call, as the turn goes on past the first five seconds
    shown = [s for s in telegram.in_chat(PRIVATE_CHAT) if s.method == "sendchataction"]
    assert len(shown) == types.count("LLMCallRequested") == 2
    assert all(s.body["action"] == "typing" for s in shown)


def test_the_same_update_four_times_at_once_is_appended_and_answered_once(
    app: FlaskClient, telegram: FakeTelegram, store: MessageStore, stepping: Stepping
) -> None:
    update = text_update("what is 6*7?", user=502)

    def deliver(_: int) -> int:
        with app.application.test_client() as own:
            return int(post(own, update).status_code)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(deliver, range(4))) == [200] * 4
    [reply] = sent_messages(telegram, PRIVATE_CHAT, 1)
    assert "42" in reply.text
    stepping.join()
    time.sleep(0.3)
    assert len(sent_messages(telegram, PRIVATE_CHAT, 1)) == 1
    assert [e.type for e in events_of(store, 502, PRIVATE_CHAT)].count("UserMessageAdded") == 1


@pytest.mark.parametrize("secret", ["wrong-secret", ""], ids=["forged", "missing"])
def test_an_update_without_the_webhook_secret_is_refused_and_appends_nothing(
    app: FlaskClient, store: MessageStore, secret: str
) -> None:
    assert post(app, text_update("hi", user=503), secret=secret).status_code == 401
    assert events_of(store, 503, PRIVATE_CHAT) == []


def test_an_outage_during_delivery_is_retried_and_the_reply_sent_once(
    app: FlaskClient, telegram: FakeTelegram, store: MessageStore, stepping: Stepping
) -> None:
    telegram.fail(502, "Bad Gateway")
    telegram.fail(429, "Too Many Requests: retry after 1", retry_after=1)
    post(app, text_update("what is 2+2?", user=504))
    [reply] = sent_messages(telegram, PRIVATE_CHAT, 1, timeout=30)
    assert "4" in reply.text
    stepping.join()
    types = [e.type for e in events_of(store, 504, PRIVATE_CHAT)]
    assert types.count("ReplyDeliveryFailed") == 2
    assert types.count("ReplyDelivered") == 1


def test_two_people_in_one_forum_topic_each_have_their_own_conversation(
    app: FlaskClient, telegram: FakeTelegram, store: MessageStore, stepping: Stepping
) -> None:
    post(app, text_update("add a task to feed the zebra", user=601, chat=GROUP, topic=TOPIC))
    [first] = sent_messages(telegram, GROUP, 1)
    assert "zebra" in first.text
    assert first.body["message_thread_id"] == TOPIC
    post(app, text_update("list my tasks", user=602, chat=GROUP, topic=TOPIC))
    second = sent_messages(telegram, GROUP, 2)[-1]
    stepping.join()
    assert "zebra" not in second.text
    hers, his = events_of(store, 601, GROUP, str(TOPIC)), events_of(store, 602, GROUP, str(TOPIC))
    assert hers[0].stream_name != his[0].stream_name


def test_in_a_group_a_mention_starts_a_conversation_and_the_person_goes_on_without_one(
    app: FlaskClient, telegram: FakeTelegram, store: MessageStore, stepping: Stepping
) -> None:
    post(app, text_update("what is 2+2?", user=603, chat=GROUP, mention=False))
    time.sleep(0.3)
    assert events_of(store, 603, GROUP) == []  # not addressed to the bot: not a conversation
    post(app, text_update("what is 2+2?", user=603, chat=GROUP))
    sent_messages(telegram, GROUP, 1)
    post(app, text_update("what is 3+3?", user=603, chat=GROUP, mention=False))
    assert "6" in sent_messages(telegram, GROUP, 2)[-1].text
    stepping.join()
    said = [e for e in events_of(store, 603, GROUP) if e.type == "UserMessageAdded"]
    assert [e.event.message for e in said] == ["what is 2+2?", "what is 3+3?"]


def test_an_approval_is_asked_with_buttons_and_only_the_owner_can_answer(
    app: FlaskClient, telegram: FakeTelegram, store: MessageStore, stepping: Stepping
) -> None:
    post(app, text_update("add a task to buy milk", user=701))
    sent_messages(telegram, PRIVATE_CHAT, 1)
    post(app, text_update("delete task 1", user=701))
    asked = sent_messages(telegram, PRIVATE_CHAT, 2)[-1]
    [[approve, decline]] = asked.body["reply_markup"]["inline_keyboard"]
    assert approve["text"].startswith("Approve")
    assert decline["text"] == "Decline"

    stranger = post(app, callback_update(approve["callback_data"], user=666))
    assert stranger.get_json()["method"] == "answerCallbackQuery"
    assert "isn't yours" in stranger.get_json()["text"]
    forged = post(app, callback_update(approve["callback_data"], user=701), secret="forged")
    assert forged.status_code == 401
    time.sleep(0.3)
    assert len(sent_messages(telegram, PRIVATE_CHAT, 2)) == 2  # neither decided anything

    clicked = post(app, callback_update(approve["callback_data"], user=701))
    assert clicked.get_json()["text"] == "Approved."
    again = post(app, callback_update(decline["callback_data"], user=701))
    assert "answered already" in again.get_json()["text"]
    done = sent_messages(telegram, PRIVATE_CHAT, 3)[-1]
    assert "delet" in done.text.lower()
    stepping.join()
    granted = [e for e in events_of(store, 701, PRIVATE_CHAT) if e.type == "ToolApprovalGranted"]
    assert [e.event.decided_by for e in granted] == [channel_user("telegram", str(BOT_ID), "701")]


def test_updates_of_odd_shapes_are_answered_200_and_append_nothing(
    app: FlaskClient, store: MessageStore
) -> None:
    odd_press = {"update_id": 1, "callback_query": {"id": "1", "from": "x", "message": "y"}}
    assert post(app, odd_press).status_code == 200
    reply = text_update("hello", user=508, chat=GROUP, mention=False)
    reply["message"]["reply_to_message"] = {"message_id": 1, "from": "the bot"}
    assert post(app, reply).status_code == 200
    assert events_of(store, 508, GROUP) == []


def test_messages_from_bots_are_ignored(app: FlaskClient, store: MessageStore) -> None:
    assert post(app, text_update("add a task", user=505, is_bot=True)).status_code == 200
    assert events_of(store, 505, PRIVATE_CHAT) == []


# several Telegram messages long
LONG = "\n".join(f"{i}. **item {i}**: {'word ' * 60}" for i in range(40))


def test_a_long_reply_failing_midway_is_resumed_after_the_parts_sent(
    telegram: FakeTelegram, make_api: MakeApi, store: MessageStore, tg_settings: Settings
) -> None:
    expected = [piece for piece, _ in formatted(LONG)]
    assert len(expected) >= 3
    telegram.fail(502, "Bad Gateway", after=1)  # the first part is taken, the second is not
    stepping = Stepping(build_engine(tg_settings, store, Answering(LONG)))
    with make_api(stepping, core=tg_settings).flask_app().test_client() as own:
        post(own, text_update("report, please", user=507))
        sent_messages(telegram, PRIVATE_CHAT, len(expected), timeout=30)
    stepping.join()
    time.sleep(0.2)
    sent = [s.text for s in telegram.in_chat(PRIVATE_CHAT) if s.method == "sendmessage"]
    assert sent == expected  # each part once
    events = events_of(store, 507, PRIVATE_CHAT)
    [failed] = [e.event for e in events if e.type == "ReplyDeliveryFailed"]
    assert failed.parts_delivered == 1
    assert [e.type for e in events].count("ReplyDelivered") == 1


def test_a_long_reply_is_split_within_telegrams_limit_in_utf16_units() -> None:
    text = ("😀 **word** " * 700 + "\n\n") * 3
    pieces = formatted(text)
    assert len(pieces) > 1
    assert all(0 < utf16_len(piece) <= 4096 for piece, _ in pieces)
    assert "".join(p for p, _ in pieces).replace("\n", "").replace(" ", "") == (
        text.replace("**", "").replace("\n", "").replace(" ", "")
    )
    for piece, entities in pieces:  # each piece's own entities, within it
        assert entities
        assert all(e["type"] == "bold" for e in entities)
        assert all(e["offset"] + e["length"] <= utf16_len(piece) for e in entities)


FORMATTED = "**Done**: ran `ls`, see [the docs](https://example.com). `<b>&amp;</b>`"


def test_markdown_becomes_entities_and_markup_in_the_text_stays_text(
    telegram: FakeTelegram, make_api: MakeApi, store: MessageStore, tg_settings: Settings
) -> None:
    stepping = Stepping(build_engine(tg_settings, store, Answering(FORMATTED)))
    with make_api(stepping, core=tg_settings).flask_app().test_client() as own:
        post(own, text_update("format, please", user=506))
        [reply] = sent_messages(telegram, PRIVATE_CHAT, 1)
    stepping.join()
    assert "parse_mode" not in reply.body
    assert "**" not in reply.text
    assert "<b>&amp;</b>" in reply.text  # sent as written: not markup, not escaped twice
    kinds = {e["type"] for e in reply.body["entities"]}
    assert {"bold", "code", "text_link"} <= kinds
