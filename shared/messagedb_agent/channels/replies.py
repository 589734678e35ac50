"""Reply deliveries by address: a chat platform's scheme (`slack:...`) goes to that platform,
anything else is a callback URL.

Only the channels' own endpoints create threads with a platform address: the API accepts
https callback URLs only (`outbound`), so no caller can make the agent post into a platform
conversation by naming one. Every delivery, whatever its address, is the same claimed step
(`ReplyDeliveryRequested`, then `ReplyDelivered` or `ReplyDeliveryFailed`): retried with
backoff, never sent again once recorded as delivered.

A platform's sender may also show that a long turn is at work: `busy` (a sign that records
nothing, Telegram's "typing…") and `notice` (a message the reply later replaces, Slack's and
Google Chat's "Working on it…"); the engine calls them through this router, best effort.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from messagedb_agent.channels.callback import DeliveryError, ReplySender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutedReplies:
    webhooks: ReplySender
    platforms: Mapping[str, ReplySender] = field(default_factory=dict)

    def send(self, url: str, body: bytes, delivery_id: str, *, skip: int = 0) -> int:
        scheme, colon, _ = url.partition(":")
        sender = self.platforms.get(scheme) if colon else None
        if sender is not None:
            return sender.send(url, body, delivery_id, skip=skip)
        if scheme in KNOWN_PLATFORMS:
            raise DeliveryError(
                f"replies to {scheme} are not configured on this deployment", retryable=True
            )
        return self.webhooks.send(url, body, delivery_id)

    def notices(self, url: str) -> bool:
        """Whether `notice` can post on this address's platform."""
        scheme, colon, _ = url.partition(":")
        return bool(colon) and hasattr(self.platforms.get(scheme), "notice")

    def notice(self, url: str, text: str, key: str) -> str | None:
        """Post a short "Working on it…" where the platform lets it later be replaced by the
        reply (Slack, Google Chat): the message's reference, or None (no such platform, or a
        failure, which only goes to the log). `key` names the step, for platforms whose posts
        take an idempotency key."""
        scheme, colon, _ = url.partition(":")
        post = getattr(self.platforms.get(scheme), "notice", None) if colon else None
        if post is None:
            return None
        try:
            reference = post(url, text, key)
        except Exception as error:
            log.info("could not post a busy notice on %s: %s", scheme, error)
            return None
        return str(reference) if reference else None

    def busy(self, url: str) -> None:
        """Show the conversation that the agent is at work, where the platform has a way
        (Telegram's "typing…", which lasts five seconds): before each model call of a turn.
        Best effort: it records nothing, and a failure only goes to the log."""
        scheme, colon, _ = url.partition(":")
        show = getattr(self.platforms.get(scheme), "busy", None) if colon else None
        if show is None:
            return
        try:
            show(url)
        except Exception as error:
            log.debug("could not show %s busy: %s", scheme, error)


def address_uri(scheme: str, *parts: str) -> str:
    """A platform reply address: `scheme:part/part/...`, each part the platform's own id, `-`
    for one that does not apply (a DM's thread)."""
    return f"{scheme}:{'/'.join(parts)}"


def address_parts(uri: str, scheme: str, count: int) -> tuple[str, ...]:
    """The parts of a `scheme:` address, or ValueError for anything else."""
    given, _, rest = uri.partition(":")
    parts = tuple(rest.split("/"))
    if given != scheme or len(parts) != count or not all(parts):
        raise ValueError(f"not a {scheme} reply address: {uri!r}")
    return parts


# Addresses of a platform whose credentials are missing wait (retried, with backoff) for an
# operator to configure it, as any operator fault does, instead of going to the webhook sender.
KNOWN_PLATFORMS = frozenset({"slack", "telegram", "google-chat"})
