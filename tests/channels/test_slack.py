"""Slack through the ingest function's endpoints and the step function's deliveries, against the
local Slack (`fake_slack`): requests signed with Slack's real algorithm and shaped like its
documented examples in, replies through the official `slack_sdk` WebClient out."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer
from tests.api.test_user_stories import Stepping
from tests.channels.fake_slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    block_actions,
    form_signed,
    message_event,
    signed,
)
from tests.channels.models import SLOW_ANSWER, Answering

from messagedb_agent.channels.conversations import generation_key
from messagedb_agent.events.ids import channel_key, channel_user, idempotent_thread_id
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.notification import Notification
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import request_termination
from messagedb_agent.threads.reading import read_thread

EVENTS = "/v1/channels/slack/events"
INTERACTIONS = "/v1/channels/slack/interactions"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def slack_settings(settings: Settings, slack: FakeSlack) -> Settings:
    return settings.replace(
        slack_signing_secret=SIGNING_SECRET,
        slack_bot_token=BOT_TOKEN,
        slack_api_url=slack.api_url,
        tools_requiring_approval="delete_task",
    )


@pytest.fixture
def stepping(store: MessageStore, slack_settings: Settings) -> Iterator[Stepping]:
    publisher = Stepping(build_engine(slack_settings, store, OfflineModel()))
    yield publisher
    publisher.join()


@pytest.fixture
def app(make_api: MakeApi, stepping: Stepping, slack_settings: Settings) -> Iterator[FlaskClient]:
    with make_api(stepping, core=slack_settings).flask_app().test_client() as client:
        yield client


def send(app: FlaskClient, envelope: dict[str, Any], **headers: str) -> Any:
    body = json.dumps(envelope).encode()
    return app.post(EVENTS, data=body, headers={**signed(body), **headers})


def replies(slack: FakeSlack, channel: str, count: int, timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(posted := slack.in_channel(channel)) < count:
        assert time.monotonic() < deadline, f"{len(posted)} of {count} replies: {posted}"
        time.sleep(0.05)
    return posted


def thread_events(store: MessageStore, user: str, thread_key: str) -> list[Any]:
    thread = names.in_shard(idempotent_thread_id(user, thread_key), names.DEFAULT_THREAD_SHARDS)
    return read_thread(store, names.thread_stream(thread))


def test_slacks_url_verification_is_answered_with_its_challenge(app: FlaskClient) -> None:
    challenge = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    answered = send(app, challenge)
    assert answered.status_code == 200
    assert answered.get_json() == {"challenge": challenge["challenge"]}


def test_a_dm_conversation_with_a_tool_call_is_answered_in_the_dm(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    user = f"U{time.time_ns() % 10**9:09d}"
    first = send(app, message_event("add a task to buy milk", user=user))
    assert first.status_code == 200

    [reply] = replies(slack, "D0DIRECT01", 1)
    assert "buy milk" in reply.shown
    assert reply.thread_ts is None  # a DM is answered at its top level
    assert reply.body["metadata"]["event_type"] == "agent_reply"
    send(app, message_event("list my tasks", user=user))
    second = replies(slack, "D0DIRECT01", 2)[-1]
    assert "buy milk" in second.shown
    stepping.join()
    events = thread_events(
        store, channel_user("slack", TEAM, user), channel_key("slack", TEAM, "D0DIRECT01", "")
    )
    types = [e.type for e in events]
    assert types.count("UserMessageAdded") == 2
    assert "ToolExecutionCompleted" in types
    assert types.count("ReplyDelivered") == 2
    assert events[0].event.callback_url == f"slack:{TEAM}/D0DIRECT01/-"


def test_a_retry_storm_of_one_event_appends_it_once_and_answers_once(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    user = "U0STORM001"
    event = message_event("what is 6*7?", user=user, channel="C0GENERAL1", kind="app_mention")
    also_as_message = dict(event, event_id="Ev0OTHER01")
    also_as_message["event"] = dict(event["event"], type="message", channel_type="channel")

    def deliver(n: int) -> int:
        chosen = also_as_message if n == 4 else event
        retry = {"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"} if n else {}
        with app.application.test_client() as own:  # a test client serves one thread
            return int(send(own, chosen, **retry).status_code)

    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(deliver, range(5)))

    assert statuses == [200] * 5
    [reply] = replies(slack, "C0GENERAL1", 1)
    assert "42" in reply.shown
    assert reply.thread_ts == event["event"]["ts"]  # in the thread the mention started
    stepping.join()
    time.sleep(0.3)
    assert len(slack.in_channel("C0GENERAL1")) == 1
    key = channel_key("slack", TEAM, "C0GENERAL1", event["event"]["ts"])
    events = thread_events(store, channel_user("slack", TEAM, user), key)
    assert [e.type for e in events].count("UserMessageAdded") == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(int(time.time()) - 301)},
        {"X-Slack-Request-Timestamp": "not-a-number"},
        {"X-Slack-Signature": "v0=ünïcode"},
        {"X-Slack-Signature": ""},
    ],
    ids=["forged", "stale", "bad-timestamp", "non-ascii", "missing"],
)
def test_a_request_slack_did_not_sign_just_now_is_refused_and_appends_nothing(
    app: FlaskClient, store: MessageStore, headers: dict[str, str]
) -> None:
    user = f"U{time.time_ns() % 10**9:09d}"
    envelope = message_event("add a task to buy milk", user=user)
    body = json.dumps(envelope).encode()
    sent = signed(body)
    if "X-Slack-Request-Timestamp" in headers and headers["X-Slack-Request-Timestamp"].isdigit():
        sent = signed(body, at=int(headers["X-Slack-Request-Timestamp"]))  # signed, but stale
    else:
        sent.update(headers)

    answered = app.post(EVENTS, data=body, headers=sent)

    assert answered.status_code == 401
    key = channel_key("slack", TEAM, "D0DIRECT01", "")
    assert thread_events(store, channel_user("slack", TEAM, user), key) == []


def test_a_signature_with_another_apps_secret_is_refused(app: FlaskClient) -> None:
    body = json.dumps(message_event("hi")).encode()
    answered = app.post(EVENTS, data=body, headers=signed(body, secret="another-apps-secret"))
    assert answered.status_code == 401


def test_an_outage_during_delivery_is_retried_and_the_reply_posted_once(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    slack.fail(503, "service_unavailable")
    slack.fail(429, "ratelimited")
    user = "U0OUTAGE01"
    send(app, message_event("what is 2+2?", user=user))

    [reply] = replies(slack, "D0DIRECT01", 1, timeout=30)
    assert "4" in reply.shown
    stepping.join()
    assert [error for _, _, error in slack.refused] == ["service_unavailable", "ratelimited"]
    key = channel_key("slack", TEAM, "D0DIRECT01", "")
    types = [e.type for e in thread_events(store, channel_user("slack", TEAM, user), key)]
    assert types.count("ReplyDeliveryFailed") == 2
    assert types.count("ReplyDelivered") == 1
    assert len(slack.in_channel("D0DIRECT01")) == 1


# longer than one Slack section, with Markdown in it
LONG = "## Report\n\n" + "\n".join(
    f"- **item {i}**: <b>{'word ' * 40}</b> & more" for i in range(800)
)


def test_a_reply_longer_than_slacks_limits_is_one_message_of_blocks_within_them(
    make_api: MakeApi, store: MessageStore, slack: FakeSlack, slack_settings: Settings
) -> None:
    stepping = Stepping(build_engine(slack_settings, store, Answering(LONG)))
    with make_api(stepping, core=slack_settings).flask_app().test_client() as app:
        send(app, message_event("report, please", user="U0LONGREP1"))
        [reply] = replies(slack, "D0DIRECT01", 1)
    stepping.join()

    assert len(LONG) > 40_000
    assert 1 < len(reply.blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in reply.blocks)
    assert len(reply.text) <= 4000
    shown = reply.shown
    assert "*item 0*" in shown  # Markdown bold became mrkdwn bold
    assert "&lt;b&gt;" in shown  # angle brackets cannot become Slack mentions or links
    assert "<b>" not in shown
    assert "longer than one Slack message" in shown  # cut where 50 blocks end, and said so


def test_a_long_turn_says_it_is_working_and_the_reply_replaces_that_message(
    make_api: MakeApi, store: MessageStore, slack: FakeSlack, slack_settings: Settings
) -> None:
    settings = slack_settings.replace(busy_notice_seconds=0.3)
    user = "U0SLOWTURN"
    stepping = Stepping(build_engine(settings, store, Answering(SLOW_ANSWER, 1.0)))
    with make_api(stepping, core=settings).flask_app().test_client() as app:
        send(app, message_event("think hard", user=user))
        [notice] = replies(slack, "D0DIRECT01", 1)
        assert notice.text == "Working on it…"
        stepping.join()
    [reply] = slack.in_channel("D0DIRECT01")  # the same message, now the reply
    assert reply.ts == notice.ts
    assert "*answer*" in reply.shown
    assert [u["ts"] for u in slack.updates] == [notice.ts]
    key = channel_key("slack", TEAM, "D0DIRECT01", "")
    events = thread_events(store, channel_user("slack", TEAM, user), key)
    [posted] = [e.event for e in events if e.type == "BusyNoticePosted"]
    assert posted.reference == notice.ts


def test_a_quick_turn_posts_no_busy_notice(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    send(app, message_event("what is 2+2?", user="U0QUICK001"))
    [reply] = replies(slack, "D0DIRECT01", 1)
    stepping.join()
    assert "4" in reply.shown
    assert slack.updates == []


def test_two_people_in_one_channel_each_have_their_own_conversation(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    alice, bob = "U0ALICE777", "U0BOB77777"
    mention = message_event(
        "add a task to feed the zebra", user=alice, channel="C0GENERAL1", kind="app_mention"
    )
    send(app, mention)
    [hers_said] = replies(slack, "C0GENERAL1", 1)
    assert "zebra" in hers_said.shown
    root = mention["event"]["ts"]
    # Bob speaks in Alice's thread: his own conversation, never hers.
    send(
        app,
        message_event(
            "@agent list my tasks",
            user=bob,
            channel="C0GENERAL1",
            kind="app_mention",
            thread_ts=root,
        ),
    )
    bobs = replies(slack, "C0GENERAL1", 2)[-1]
    stepping.join()

    assert "zebra" not in bobs.shown
    key = channel_key("slack", TEAM, "C0GENERAL1", root)
    hers = thread_events(store, channel_user("slack", TEAM, alice), key)
    his = thread_events(store, channel_user("slack", TEAM, bob), key)
    assert hers[0].stream_name != his[0].stream_name
    assert {e.metadata.user_id for e in hers if e.type == "UserMessageAdded"} == {
        channel_user("slack", TEAM, alice)
    }
    assert {e.metadata.user_id for e in his if e.type == "UserMessageAdded"} == {
        channel_user("slack", TEAM, bob)
    }
    # A plain message in a channel thread nobody started with the agent is not for it.
    send(
        app, message_event("just chatting", user=bob, channel="C0GENERAL1", channel_type="channel")
    )
    stepping.join()
    time.sleep(0.3)
    assert len(slack.in_channel("C0GENERAL1")) == 2


@pytest.mark.parametrize(
    "extra",
    [
        {"bot_id": "B0AGENT001"},  # this app's own reply
        {"bot_id": "B0OTHERBOT", "subtype": "bot_message"},
        {"subtype": "message_changed"},
        {"subtype": "channel_join"},
    ],
    ids=["own-bot", "other-bot", "edit", "join"],
)
def test_bots_and_message_subtypes_are_ignored(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, extra: dict[str, str]
) -> None:
    user = f"U{time.time_ns() % 10**9:09d}"
    answered = send(app, message_event("add a task to buy milk", user=user, **extra))
    assert answered.status_code == 200
    key = channel_key("slack", TEAM, "D0DIRECT01", "")
    assert thread_events(store, channel_user("slack", TEAM, user), key) == []


def test_an_approval_is_asked_with_buttons_and_only_the_owner_can_answer(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    user = "U0APPROVE1"
    send(app, message_event("add a task to buy milk", user=user))
    replies(slack, "D0DIRECT01", 1)
    send(app, message_event("delete task 1", user=user))
    asked = replies(slack, "D0DIRECT01", 2)[-1]
    actions = [b for b in asked.blocks if b["type"] == "actions"]
    [approve, decline] = actions[0]["elements"]
    assert (approve["action_id"], decline["action_id"]) == ("approve", "decline")

    stranger = block_actions("approve", approve["value"], user="U0MALLORY1")
    assert app.post(INTERACTIONS, data=stranger, headers=form_signed(stranger)).status_code == 200
    time.sleep(0.3)
    assert len(slack.in_channel("D0DIRECT01")) == 2  # a stranger's click decides nothing

    clicked = block_actions("approve", approve["value"], user=user)
    forged = dict(form_signed(clicked), **{"X-Slack-Signature": "v0=" + "1" * 64})
    assert app.post(INTERACTIONS, data=clicked, headers=forged).status_code == 401
    assert app.post(INTERACTIONS, data=clicked, headers=form_signed(clicked)).status_code == 200
    done = replies(slack, "D0DIRECT01", 3)[-1]
    assert "delet" in done.shown.lower()
    stepping.join()
    key = channel_key("slack", TEAM, "D0DIRECT01", "")
    events = thread_events(store, channel_user("slack", TEAM, user), key)
    granted = [e for e in events if e.type == "ToolApprovalGranted"]
    assert [e.event.decided_by for e in granted] == [channel_user("slack", TEAM, user)]


def _end(store: MessageStore, stepping: Stepping, owner: str, key: str) -> None:
    """The conversation ends (as a limit, a failure or an end asked for ends one)."""
    thread = thread_events(store, owner, key)[0].event.thread_id
    ended = request_termination(store, thread, owner=owner)
    stepping.publish([Notification(stream_name=ended.stream_name, position=ended.position)])
    stepping.join()
    assert "SessionCompleted" in [e.type for e in thread_events(store, owner, key)]


def test_after_a_dm_conversation_ends_the_next_message_starts_a_new_one(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    user = "U0ENDEDDM1"
    owner, key = channel_user("slack", TEAM, user), channel_key("slack", TEAM, "D0DIRECT01", "")
    send(app, message_event("what is 2+2?", user=user))
    replies(slack, "D0DIRECT01", 1)
    stepping.join()
    _end(store, stepping, owner, key)
    before = len(slack.in_channel("D0DIRECT01"))

    retried = message_event("what is 3+3?", user=user)
    send(app, retried)
    send(app, retried, **{"X-Slack-Retry-Num": "1"})  # a repeat lands in the same new one
    answer = replies(slack, "D0DIRECT01", before + 1)[-1]
    stepping.join()
    assert "6" in answer.shown
    first = [e for e in thread_events(store, owner, key) if e.type == "UserMessageAdded"]
    later = thread_events(store, owner, generation_key(key, 1))
    assert len(first) == 1  # nothing more went into the ended conversation
    assert [e.event.message for e in later if e.type == "UserMessageAdded"] == ["what is 3+3?"]
    assert later[0].event.callback_url == f"slack:{TEAM}/D0DIRECT01/-"  # replies in the DM

    _end(store, stepping, owner, generation_key(key, 1))  # and again: generation 2
    send(app, message_event("what is 4+4?", user=user))
    assert "8" in replies(slack, "D0DIRECT01", before + 3)[-1].shown
    stepping.join()
    assert thread_events(store, owner, generation_key(key, 2))


def test_a_reply_in_an_ended_channel_thread_is_answered_in_words_and_not_appended(
    app: FlaskClient, slack: FakeSlack, store: MessageStore, stepping: Stepping
) -> None:
    user, channel = "U0ENDEDCH1", "C0GENERAL1"
    mention = message_event("what is 2+2?", user=user, channel=channel, kind="app_mention")
    root = mention["event"]["ts"]
    owner, key = channel_user("slack", TEAM, user), channel_key("slack", TEAM, channel, root)
    send(app, mention)
    replies(slack, channel, 1)
    stepping.join()
    _end(store, stepping, owner, key)
    before = len(slack.in_channel(channel))

    follow = message_event(
        "are you there?", user=user, channel=channel, channel_type="channel", thread_ts=root
    )
    assert send(app, follow).status_code == 200
    told = replies(slack, channel, before + 1)[-1]
    assert "This conversation has ended. Mention me" in told.text
    said = [e for e in thread_events(store, owner, key) if e.type == "UserMessageAdded"]
    assert len(said) == 1
    assert thread_events(store, owner, generation_key(key, 1)) == []


def test_a_disabled_channel_is_not_there(make_api: MakeApi) -> None:
    with make_api().flask_app().test_client() as app:
        body = json.dumps(message_event("hi")).encode()
        assert app.post(EVENTS, data=body, headers=signed(body)).status_code == 404


def test_an_api_token_can_never_act_as_a_slack_user(make_api: MakeApi) -> None:
    with make_api().flask_app().test_client() as app:
        as_slack_user = bearer(channel_user("slack", TEAM, "U0ALICE001"))
        refused = app.get("/v1/threads", headers=as_slack_user)
    assert refused.status_code == 401
    assert "chat platform" in refused.get_json()["error"]["message"]


def test_the_api_refuses_a_slack_address_as_a_callback_url(
    make_api: MakeApi, slack_settings: Settings
) -> None:
    with make_api(core=slack_settings).flask_app().test_client() as app:
        answered = app.post(
            "/v1/threads",
            json={"message": "hi", "callback_url": f"slack:{TEAM}/C0GENERAL1/1.000001"},
            headers=bearer("someone"),
        )
    assert answered.status_code in (400, 422)


def test_what_a_client_gets_wrong_at_the_channel_endpoints_is_a_clear_4xx(
    app: FlaskClient, make_api: MakeApi, slack_settings: Settings
) -> None:
    not_json = b"{not json"
    assert app.post(EVENTS, data=not_json, headers=signed(not_json)).status_code == 400
    listed = b"[1, 2]"
    assert app.post(EVENTS, data=listed, headers=signed(listed)).status_code == 400
    no_payload = b"actions=1"
    assert (
        app.post(INTERACTIONS, data=no_payload, headers=form_signed(no_payload)).status_code == 400
    )
    odd = {"type": "block_actions", "user": "U0", "team": "T0", "actions": {"a": 1}}
    shapeless = urllib.parse.urlencode({"payload": json.dumps(odd)}).encode()
    assert app.post(INTERACTIONS, data=shapeless, headers=form_signed(shapeless)).status_code == 200
    assert app.get(EVENTS).status_code == 405
    assert app.post("/v1/channels/slack/nowhere", data=b"{}").status_code == 404
    assert app.post("/v1/channels/irc/events", data=b"{}").status_code == 404
    with make_api(core=slack_settings, max_body_bytes=1024).flask_app().test_client() as small:
        big = json.dumps(message_event("x" * 2000)).encode()
        assert small.post(EVENTS, data=big, headers=signed(big)).status_code == 413


def test_a_person_over_the_rate_limit_is_told_so_in_slack_and_nothing_is_appended(
    make_api: MakeApi, store: MessageStore, slack: FakeSlack, slack_settings: Settings
) -> None:
    user = f"U{time.time_ns() % 10**9:09d}"
    limited = make_api(core=slack_settings, rate_limit_per_minute=1, rate_limit_burst=1)
    with limited.flask_app().test_client() as app:
        send(app, message_event("first", user=user))
        send(app, message_event("second, too soon", user=user))
    told = replies(slack, "D0DIRECT01", 1)[-1]
    assert "faster than I can keep up" in told.text
    key = channel_key("slack", TEAM, "D0DIRECT01", "")
    said = thread_events(store, channel_user("slack", TEAM, user), key)
    assert [e.event.message for e in said if e.type == "UserMessageAdded"] == ["first"]
