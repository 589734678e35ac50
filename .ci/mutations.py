"""Each invariant's mechanism, removed in turn, must make the test that guards it fail.

Runs on a scratch copy of the committed tree (git archive). First the guarding tests run on the
unmutated copy and must all pass; then each mutation is applied alone and only its own named
test runs, which must fail. A mutation caught by some other test, or by none, is a survivor:
the test that claims to prove the invariant would pass without the mechanism it is about.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIB = "shared/messagedb_agent"
EFFECTS = f"{LIB}/engine/effects.py"
STEP = f"{LIB}/engine/step.py"
NEXT = f"{LIB}/projections/next_step.py"
EVENTS = f"{LIB}/events/base.py"
SWEEP = f"{LIB}/relay/sweep.py"
INVARIANTS = "tests/engine/test_invariants.py"
APPROVAL = "tests/engine/test_approval.py"
CANCEL = "tests/engine/test_cancel.py"
IN_DOUBT = "tests/engine/test_in_doubt.py"
PROGRESS = f"{LIB}/projections/progress.py"
IDS = f"{LIB}/events/ids.py"
RELAY = "tests/relay/test_sweep.py"
LIVE_TEXT = f"{LIB}/live/text.py"
LIVE_TESTS = "tests/live/test_text.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # the file holding the mechanism
    old: str  # the mechanism as written
    new: str  # the same code without it
    test: str  # the pytest node id of the test that guards it

    def apply(self, tree: Path) -> str | None:
        """Mutate the copy; the original text, or None when the mechanism is not found."""
        path = tree / self.path
        original = path.read_text()
        if original.count(self.old) != 1:
            return None
        path.write_text(original.replace(self.old, self.new))
        return original


MUTATIONS = (
    Mutation(
        "1 effects: result ids are random",
        EFFECTS,
        "def message_id(step_id: str, part: str) -> str:\n    return ids.message_id(step_id, part)",
        "def message_id(step_id: str, part: str) -> str:\n"
        "    return str(__import__('uuid').uuid4())",
        f"{INVARIANTS}::test_a_slow_worker_whose_lease_ran_out_cannot_append_a_second_result",
    ),
    Mutation(
        "2 paid calls: claims ignore expected_version",
        STEP,
        "head.stream_name, batch, expected_version=head.position",
        "head.stream_name, batch, expected_version=None",
        f"{INVARIANTS}::test_a_worker_whose_read_went_stale_before_its_claim_makes_no_call",
    ),
    Mutation(
        "3 stalls: leases never expire",
        NEXT,
        "if p.llm_lease is not None and now < p.llm_lease:",
        "if p.llm_lease is not None:",
        f"{INVARIANTS}::test_crash_after_the_claim_is_recovered_after_the_lease",
    ),
    Mutation(
        "4 stale: old notifications are processed",
        STEP,
        "if notification.position != view.head.position:",
        "if notification.position > view.head.position:",
        f"{INVARIANTS}::test_stale_and_out_of_order_notifications_change_nothing",
    ),
    Mutation(
        "5 mid-turn: a response is placed at its own position",
        f"{LIB}/projections/llm_context.py",
        "key = (anchor, 1, recorded.position)",
        "key = (recorded.position, 1, recorded.position)",
        f"{INVARIANTS}::test_a_message_sent_during_a_model_call_is_answered_next",
    ),
    Mutation(
        "6 failures: a model error is recorded as not retryable",
        EFFECTS,
        "retryable = error.retryable and not exhausted and",
        "retryable = False and",
        f"{INVARIANTS}::test_model_failures_are_recorded_retried_with_backoff_then_end_the_turn",
    ),
    Mutation(
        "6 failures: a model that cannot be used ends the turn instead of pausing the thread",
        EFFECTS,
        "if errors.is_operator_fault(error) or (",
        "if (",
        f"{INVARIANTS}::test_an_operator_fault_pauses_the_thread_until_it_is_fixed",
    ),
    Mutation(
        "8 compaction: the context is cut anywhere, parting a tool call from its result",
        f"{LIB}/projections/llm_context.py",
        "if isinstance(message, UserTurn) and not isinstance(message, ContextSummary):",
        "if not isinstance(message, ContextSummary):",
        "tests/projections/test_compaction.py::test_a_tool_call_is_never_parted_from_its_result",
    ),
    Mutation(
        "8 compaction: a message that arrives during a compaction is summarised away",
        f"{LIB}/projections/llm_context.py",
        "kept = [entry for entry in acc.entries if entry[0] >= floor]",
        "kept = [entry for entry in acc.entries if entry[0] >= floor][:1]",
        "tests/engine/test_compaction.py::test_a_message_that_arrives_during_a_compaction_is_kept_and_answered",
    ),
    Mutation(
        "7 users: the owner comes from the model's arguments",
        STEP,
        "owner=view.owner,",
        "owner=str(call.arguments.get('user_id', view.owner)),",
        f"{INVARIANTS}::test_tools_act_for_the_thread_owner_whatever_the_model_says",
    ),
    Mutation(
        "3 stalls: the relay does not watch a claim until its lease runs out",
        EVENTS,
        "        return self.lease_expires_at\n",
        "        return None\n",
        f"{RELAY}::test_a_claim_is_reannounced_at_its_head_after_its_lease_though_the_category_moved_on",
    ),
    Mutation(
        "3 stalls: the relay forgets a claim nobody moved on after announcing it once",
        SWEEP,
        "        return events[-1].position, now + RECHECK\n",
        "        return events[-1].position, None\n",
        f"{RELAY}::test_a_claim_nobody_moves_on_is_reannounced_again_after_the_recheck_interval",
    ),
    Mutation(
        "3 stalls: the relay never announces a message that nothing answered",
        f"{LIB}/events/user.py",
        "    asks_for_step: ClassVar[bool] = True  # the model's answer\n",
        "    asks_for_step: ClassVar[bool] = False\n",
        f"{RELAY}::test_a_message_nothing_answered_is_announced_again_once_it_has_waited_too_long",
    ),
    Mutation(
        "3 stalls: a head that asks for a step is never announced again, whatever it waits for",
        EVENTS,
        "        return written + UNANSWERED_AFTER if self.asks_for_step else None\n",
        "        return None\n",
        "tests/relay/test_reannounce.py"
        "::test_every_head_that_needs_a_step_is_announced_again_until_it_moves",
    ),
    Mutation(
        "4 stale: the relay announces a stream at an older position than its newest",
        SWEEP,
        "heads[message.stream_name] = message.position",
        "heads.setdefault(message.stream_name, message.position)",
        f"{RELAY}::test_a_stream_touched_several_times_in_one_batch_is_announced_once_at_its_newest_position",
    ),
    Mutation(
        "4 stale: a relay that swept a stale state overwrites the newer one",
        f"{LIB}/relay/position.py",
        "expected_version if expected_version is not None else -1",
        "None",
        f"{RELAY}::test_a_relay_that_swept_a_stale_state_loses_the_race_and_the_newer_state_stands",
    ),
    Mutation(
        "17 approval: a call that requires approval runs without it",
        EFFECTS,
        "return call.id not in decision.approved and config.requires_approval(call.name)",
        "return False",
        f"{APPROVAL}::test_a_call_that_requires_approval_waits_and_the_others_run",
    ),
    Mutation(
        "18 approval: each decision gets an id of its own",
        IDS,
        'return message_id(tool_step, f"approval-decision-{tool_call_id}{retry}")',
        "return str(__import__('uuid').uuid4())",
        f"{APPROVAL}::test_concurrent_duplicate_approvals_write_one_decision_and_run_the_call_once",
    ),
    Mutation(
        "19 cancel: a cancelled turn's late answer is acted on",
        PROGRESS,
        "    if event.step_id in p.cancelled_steps:\n        return  # a cancelled turn's answer",
        "    if False:\n        return  # a cancelled turn's answer",
        f"{CANCEL}::test_a_cancel_issued_while_a_model_call_is_in_flight_stops_the_turn_on_every_worker",
    ),
    Mutation(
        "20 effects: a silent worker's non-idempotent call runs again",
        EFFECTS,
        "return call.id in decision.silent and not config.idempotent(call.name)",
        "return False",
        f"{IN_DOUBT}::test_a_non_idempotent_call_whose_worker_went_silent_is_reported_in_doubt_not_run_again",
    ),
    Mutation(
        "21 live text: a recorded message repeats the words that streamed live",
        LIVE_TEXT,
        "(rest := event.delta[had:])",
        "(rest := event.delta)",
        f"{LIVE_TESTS}::test_the_text_so_far_is_forwarded_once_and_the_event_sends_only_the_rest",
    ),
    Mutation(
        "22 live text: a failed attempt's streamed message is left open",
        LIVE_TEXT,
        'yield from self._ends([str(value.get("message_id"))], item)',
        "yield from ()",
        f"{LIVE_TESTS}::test_the_log_saying_an_attempt_failed_ends_its_message_under_the_id_before",
    ),
    Mutation(
        "23 gemini: a stream broken off before its finish reason is taken for the answer",
        f"{LIB}/llm/gemini.py",
        "if finish is None and feedback is None:",
        "if False:",
        "tests/llm/test_gemini_stream.py::test_a_dropped_stream_is_never_taken_for_a_whole_answer",
    ),
    Mutation(
        "24 claude: a stream broken off before its stop reason is taken for the answer",
        f"{LIB}/llm/claude.py",
        "if message.stop_reason is None:",
        "if False:",
        "tests/llm/test_claude_stream.py::test_a_dropped_stream_is_never_taken_for_a_whole_answer",
    ),
    Mutation(
        "25 slack: a request Slack did not sign is taken",
        f"{LIB}/channels/slack.py",
        "    def events(self, body: bytes, headers: Mapping[str, str]) -> Answer:\n"
        "        if not self._verified(body, headers):",
        "    def events(self, body: bytes, headers: Mapping[str, str]) -> Answer:\n"
        "        if False:",
        "tests/channels/test_slack.py::"
        "test_a_request_slack_did_not_sign_just_now_is_refused_and_appends_nothing",
    ),
    Mutation(
        "26 slack: a retried or duplicated message is appended again",
        f"{LIB}/channels/slack.py",
        "message_key=channel_key(SCHEME, team, channel, ts),",
        "message_key=str(__import__('uuid').uuid4()),",
        "tests/channels/test_slack.py::"
        "test_a_retry_storm_of_one_event_appends_it_once_and_answers_once",
    ),
    Mutation(
        "27 api: a bearer token acts as a chat platform's user",
        f"{LIB}/api/auth.py",
        "if is_channel_user(subject):",
        "if False:",
        "tests/channels/test_slack.py::test_an_api_token_can_never_act_as_a_slack_user",
    ),
    Mutation(
        "28 telegram: an update without the webhook's secret is taken",
        f"{LIB}/channels/telegram.py",
        "if not hmac.compare_digest(given.encode(), self._secret.encode()):",
        "if False:",
        "tests/channels/test_telegram.py::"
        "test_an_update_without_the_webhook_secret_is_refused_and_appends_nothing",
    ),
    Mutation(
        "29 telegram: a repeated update is appended again",
        f"{LIB}/channels/telegram.py",
        "message_key=channel_key(SCHEME, bot, str(chat_id), str(message_id)),",
        "message_key=str(__import__('uuid').uuid4()),",
        "tests/channels/test_telegram.py::"
        "test_the_same_update_four_times_at_once_is_appended_and_answered_once",
    ),
    Mutation(
        "30 google chat: a request without Chat's token is taken",
        f"{LIB}/channels/google_chat.py",
        "        if not self._tokens.verified(authorization):",
        "        if False:",
        "tests/channels/test_google_chat.py::"
        "test_a_request_without_chats_own_token_is_refused_and_appends_nothing",
    ),
    Mutation(
        "31 google chat: a token any Google account can get for the URL is taken",
        f"{LIB}/channels/google_chat.py",
        'return claims.get("email") == self._caller and claims.get("email_verified") is True',
        "return True",
        "tests/channels/test_google_chat.py::"
        "test_with_an_endpoint_audience_only_the_configured_caller_is_taken",
    ),
    Mutation(
        "32 google chat: a repeated event is appended again",
        f"{LIB}/channels/google_chat.py",
        "message_key=channel_key(SCHEME, name),",
        "message_key=str(__import__('uuid').uuid4()),",
        "tests/channels/test_google_chat.py::"
        "test_the_same_event_four_times_at_once_is_appended_and_answered_once",
    ),
    Mutation(
        "33 google chat: a retried delivery posts its parts again",
        f"{LIB}/channels/google_chat.py",
        'return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SCHEME}:{delivery_id}/{part}"))',
        "return str(uuid.uuid4())",
        "tests/channels/test_google_chat.py::"
        "test_a_long_reply_is_several_messages_and_a_retry_reposts_none_of_them",
    ),
    Mutation(
        "34 google chat: a reply leaves the person's thread",
        f"{LIB}/channels/google_chat.py",
        'arguments["message_reply_option"] = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"',
        "pass",
        "tests/channels/test_google_chat.py::"
        "test_an_add_on_event_in_a_space_is_answered_in_its_thread",
    ),
    Mutation(
        "35 telegram: a retried delivery sends again the parts already sent",
        STEP,
        "skip=effects.parts_delivered(view, claim.step_id),",
        "skip=0,",
        "tests/channels/test_telegram.py::"
        "test_a_long_reply_failing_midway_is_resumed_after_the_parts_sent",
    ),
    Mutation(
        "36 threads: a message after the closing message's delivery is appended to an ended thread",
        f"{LIB}/threads/commands.py",
        "    return store.get_last_stream_message(stream, SessionCompleted.type) is not None",
        "    return False",
        "tests/api/test_errors.py::"
        "test_a_message_after_the_closing_messages_delivery_is_still_thread_closed",
    ),
    Mutation(
        "37 channels: a long turn's reply is posted beside its busy notice, not in its place",
        EFFECTS,
        "    if notice is not None:  # a chat platform's",
        "    if False:  # a chat platform's",
        "tests/channels/test_slack.py::"
        "test_a_long_turn_says_it_is_working_and_the_reply_replaces_that_message",
    ),
    Mutation(
        "38 channels: a DM whose conversation ended can never be talked to again",
        f"{LIB}/channels/conversations.py",
        "if not message.starts or key != message.thread_key:",
        "if True:",
        "tests/channels/test_slack.py::"
        "test_after_a_dm_conversation_ends_the_next_message_starts_a_new_one",
    ),
)


def _pytest(tree: Path, env: dict[str, str], tests: list[str]) -> subprocess.CompletedProcess[str]:
    python = REPO / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD"], cwd=REPO, capture_output=True, check=True
        ).stdout
        tar_path = root / "tree.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(root / "tree", filter="data")
        tree = root / "tree"
        env = {**os.environ, "PYTHONPATH": f"{tree / 'shared'}{os.pathsep}{tree}"}

        baseline = _pytest(tree, env, ["tests/engine", *{m.test for m in MUTATIONS}])
        if baseline.returncode != 0:
            print("the guarding tests fail before any mutation:")
            print(baseline.stdout[-3000:])
            return 2
        print(f"baseline  {baseline.stdout.strip().splitlines()[-1]}")

        survivors = []
        for mutation in MUTATIONS:
            original = mutation.apply(tree)
            if original is None:
                print(f"{mutation.name}: its mechanism is not found once in {mutation.path}")
                return 2
            try:
                result = _pytest(tree, env, [mutation.test])
            finally:
                (tree / mutation.path).write_text(original)
            test_name = mutation.test.split("::")[-1]
            if result.returncode == 1 and "FAILED" in result.stdout:
                print(f"caught    {mutation.name}\n          by {test_name}")
            else:
                print(f"SURVIVED  {mutation.name}\n          {test_name} did not fail")
                survivors.append(mutation.name)
    print(f"{len(MUTATIONS) - len(survivors)} of {len(MUTATIONS)} mutations caught by their tests")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
