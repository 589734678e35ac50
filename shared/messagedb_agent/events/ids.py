"""Deterministic ids: the same decision on the same stream always gets the same id.

Two workers that read the same head derive the same step id, so their claims collide in the
database; results are written under ids derived from the step id, so a retried or duplicated
worker can never write a result twice.

An id derived from several parts must not let two different tuples of parts meet. Joining with
`/` is unambiguous only while every part but the last cannot contain `/`: true of stream
names, step ids (UUIDs) and fixed words, which is what the step ids here are made of. Parts that
come from outside (a user id, an idempotency key) are length-prefixed instead (`_joined`).

This module also says which user ids the system accepts (`user_id_problem`), since user ids
become parts of ids and stream names.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

_NAMESPACE = uuid.UUID("6f1c4a52-3f0e-4f55-9a55-2b7f4a0c9e11")
# Threads found again by (owner, idempotency key). A namespace of its own, not the one the
# earlier `owner/key` derivation used, so no new id can equal an id derived the old way.
_IDEMPOTENT_THREAD_NAMESPACE = uuid.UUID("3fadfca6-9874-48b0-8b2e-f36c14120eeb")
MAX_USER_ID_LENGTH = 255


def llm_step_id(stream_name: str, head_position: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{stream_name}/llm/{head_position}"))


def compaction_step_id(stream_name: str, head_position: int) -> str:
    """The compaction that runs, at this head, before the call that would answer there."""
    return str(uuid.uuid5(_NAMESPACE, f"{stream_name}/compaction/{head_position}"))


@lru_cache(maxsize=65536)  # folds ask for it once per response, every time they fold a thread
def tool_step_id(llm_step: str) -> str:
    """The tool step that executes the calls an LLM step's response asked for."""
    return str(uuid.uuid5(_NAMESPACE, f"{llm_step}/tools"))


@lru_cache(maxsize=65536)
def delivery_step_id(llm_step: str) -> str:
    """The delivery of the reply an LLM step produced to the thread's callback URL."""
    return str(uuid.uuid5(_NAMESPACE, f"{llm_step}/delivery"))


def closing_delivery_step_id(stream_name: str) -> str:
    """The delivery of a thread's closing message to its callback URL."""
    return delivery_step_id(f"{stream_name}/completed")


def approval_decision_id(tool_step: str, tool_call_id: str, retry_of: int | None = None) -> str:
    """The one decision on a call's approval: granted, denied or expired, whichever is first.
    Asking again whether to rerun a call in doubt after attempt `retry_of` is a question of
    its own, with its own one decision."""
    retry = "" if retry_of is None else f"-retry-{retry_of}"
    return message_id(tool_step, f"approval-decision-{tool_call_id}{retry}")


def message_id(step_id: str, part: str) -> str:
    """Id of one event a step writes (`response`, `failure-2`, `result-<call id>`...).

    `step_id` is a UUID or a stream name, neither of which can hold `/`, so the first `/`
    ends it and `part` may hold anything (a tool call id, an idempotency key).
    """
    return str(uuid.uuid5(_NAMESPACE, f"{step_id}/{part}"))


def idempotent_thread_id(owner: str, idempotency_key: str) -> uuid.UUID:
    """The thread a user's retried "start a thread" request finds again.

    Both parts may contain any separator (`p/q` with key `r`, `p` with key `q/r`), so they
    are length-prefixed: each (owner, key) pair has a thread id of its own.
    """
    return uuid.uuid5(_IDEMPOTENT_THREAD_NAMESPACE, _joined(owner, idempotency_key))


# Users who reach the agent through a chat platform: `<platform>:<workspace>:<user>`, e.g.
# `slack:T123:U456`, so one platform's or workspace's user is never another's. The API refuses
# tokens whose subject is in these namespaces (`is_channel_user`), so no bearer token can act
# as, or read the threads of, a platform's user.
CHANNEL_PLATFORMS = ("slack", "telegram", "google-chat")


def channel_user(platform: str, workspace: str, user: str) -> str:
    """A platform user's id; ValueError for parts that could make two users' ids meet."""
    if platform not in CHANNEL_PLATFORMS:
        raise ValueError(f"not a chat platform: {platform!r}")
    for part in (workspace, user):
        if not part or ":" in part or not part.isprintable() or part != part.strip():
            raise ValueError(f"not a {platform} id: {part!r}")
    return f"{platform}:{workspace}:{user}"


def is_channel_user(user: str) -> bool:
    return user.partition(":")[0] in CHANNEL_PLATFORMS and ":" in user


def channel_key(platform: str, *parts: str) -> str:
    """A thread's or a message's identity on a platform, as an idempotency key: its parts
    length-prefixed, so no two tuples of parts give one key."""
    return _joined(platform, *parts)


def _joined(*parts: str) -> str:
    """The parts, each preceded by its length: decodable one way only, whatever they hold."""
    return "".join(f"{len(part)}:{part}" for part in parts)


def user_id_problem(user: object) -> str | None:
    """Why `user` cannot be a user id, or None when it can.

    A user id is written into event metadata (PostgreSQL's jsonb cannot hold U+0000), the
    rate limiter's key, stream names and log lines, and shown back to people. Printable
    characters of any script are accepted; control, format, surrogate, private-use and
    unassigned characters, line separators and surrounding spaces are not, since they could
    only smuggle something into those places or make two ids look alike.
    """
    if not isinstance(user, str) or not user:
        return "the user id is empty"
    if len(user) > MAX_USER_ID_LENGTH:
        return f"the user id is longer than {MAX_USER_ID_LENGTH} characters"
    if not user.isprintable():
        return "the user id contains a control or other unprintable character"
    if user != user.strip():
        return "the user id starts or ends with a space"
    return None
