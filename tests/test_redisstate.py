"""Tests for twisted_uploads.redisstate against a real redis-server: two nodes racing never both win.

Each test starts its own redis-server (tests/engines/redis.py) and connects one or two "nodes" (RedisState
instances with their own connections, as two processes would have) on the real reactor.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

from twisted_uploads import redisstate
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.redisstate import RedisState

from .engines.redis import RedisTestCase, entry_record, event_waiter, free_port

NOW = 1_800_000_000.0


def succeeded(results: list[tuple[bool, Any]]) -> list[Any]:
    return [value for ok, value in results if ok]


def failure_codes(results: list[tuple[bool, Any]]) -> list[ErrorCode]:
    return sorted(value.value.code for ok, value in results if not ok)


class AdmitTests(RedisTestCase):
    """admit gives cluster-unique ids and enforces the session's bounds over every node's entries."""

    @defer.inlineCallbacks
    def test_admitted_record_reads_back_equal_owned_by_the_node(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(deadline=NOW + 5))
        stored = yield node.get("s1", record.entry)
        self.assertEqual((stored, stored.server, 1 <= record.entry < 2**32), (record, "node-a", True))

    @defer.inlineCallbacks
    def test_get_of_another_session_is_none(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        self.assertIsNone((yield node.get("other", record.entry)))

    @defer.inlineCallbacks
    def test_racing_admits_of_two_nodes_never_share_an_id(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        admits = [self.admitted(node, entry_record(f"s{i % 7}", ref=f"r{i}")) for i in range(100)
                  for node in (a, b)]
        records = yield defer.gatherResults(admits)
        self.assertEqual(len({record.entry for record in records}), 200)

    @defer.inlineCallbacks
    def test_an_id_a_live_entry_has_is_never_given_again(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        # Every candidate is 5 until the second admit's retry, whose last candidate is 10.
        draws = iter([4] * 4 + [4] * 4 + [4, 4, 4, 9])
        self.patch(redisstate, "secrets", SimpleNamespace(randbelow=lambda _limit: next(draws)))
        first = yield self.admitted(a)
        second = yield self.admitted(b, entry_record("s2"))
        self.assertEqual((first.entry, second.entry), (5, 10))

    @defer.inlineCallbacks
    def test_racing_admits_never_exceed_the_slot_bound(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        results = yield defer.DeferredList(
            [self.admitted(node, entry_record(ref=f"r{i}"), max_entries=3) for i in range(10) for node in (a, b)],
            consumeErrors=True)
        self.assertEqual((len(succeeded(results)), failure_codes(results)), (3, [ErrorCode.TOO_MANY_FILES] * 17))

    @defer.inlineCallbacks
    def test_racing_admits_never_exceed_the_session_entry_bound(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        results = yield defer.DeferredList(
            [self.admitted(node, entry_record(slot=f"slot{i}", ref=f"r{i}"), max_session_entries=4)
             for i in range(6) for node in (a, b)], consumeErrors=True)
        self.assertEqual((len(succeeded(results)), failure_codes(results)),
                         (4, [ErrorCode.TOO_MANY_ENTRIES] * 8))

    @defer.inlineCallbacks
    def test_racing_admits_never_exceed_the_session_quota(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        results = yield defer.DeferredList(
            [self.admitted(node, entry_record(size=400, ref=f"r{i}"), max_session_bytes=1000)
             for i in range(4) for node in (a, b)], consumeErrors=True)
        self.assertEqual((len(succeeded(results)), failure_codes(results)), (2, [ErrorCode.QUOTA_EXCEEDED] * 6))

    @defer.inlineCallbacks
    def test_failed_and_cancelled_entries_leave_the_slot_bound_and_quota(self) -> Any:
        node = yield self.node("node-a")
        first = yield self.admitted(node, entry_record(size=900), max_entries=1)
        first.status = "error"
        yield node.save(first)
        second = yield self.admitted(node, entry_record(size=900, ref="r2"), max_entries=1, max_session_bytes=1000)
        self.assertNotEqual(second.entry, first.entry)

    @defer.inlineCallbacks
    def test_failed_entries_still_count_against_the_session_entry_bound(self) -> Any:
        node = yield self.node("node-a")
        first = yield self.admitted(node, max_session_entries=1)
        first.status = "error"
        yield node.save(first)
        error = yield self.assertFailure(self.admitted(node, entry_record(ref="r2"), max_session_entries=1),
                                         UploadError)
        self.assertEqual(error.code, ErrorCode.TOO_MANY_ENTRIES)

    @defer.inlineCallbacks
    def test_session_records_are_oldest_first(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        admitted = []
        for index, node in enumerate((a, b, a, b)):
            admitted.append((yield self.admitted(node, entry_record(ref=f"r{index}"))).entry)
        listed = yield b.session_records("s1")
        self.assertEqual([record.entry for record in listed], admitted)


class SaveTests(RedisTestCase):
    """save replaces the node's fields, keeps the claim, and refuses a stale copy."""

    @defer.inlineCallbacks
    def test_save_replaces_the_record(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        record.received, record.status, record.store = 5, "paused", {"key": "k", "parts": []}
        saved = yield node.save(record)
        self.assertEqual((saved, (yield node.get("s1", record.entry))), (True, record))

    @defer.inlineCallbacks
    def test_save_after_consume_is_refused_and_writes_nothing(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        yield node.consume("s1", record.entry)
        saved = yield node.save(record)
        self.assertEqual((saved, (yield node.session_records("s1"))), (False, []))

    @defer.inlineCallbacks
    def test_save_by_the_previous_owner_is_refused(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        record = yield self.admitted(a)
        yield b.take_over("s1", record.entry)
        record.received = 7
        saved = yield a.save(record)
        self.assertEqual((saved, (yield b.get("s1", record.entry)).received), (False, 0))

    @defer.inlineCallbacks
    def test_save_does_not_undo_a_cancel(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        yield node.cancel("s1", record.entry, now=NOW)
        record.status = "complete"
        saved = yield node.save(record)
        self.assertEqual((saved, (yield node.get("s1", record.entry)).status), (False, "cancelled"))

    @defer.inlineCallbacks
    def test_save_keeps_a_claim_made_meanwhile(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(status="complete", deadline=NOW + 100))
        yield node.claim_complete("s1", "files", 30, NOW)
        record.sha256 = "ab" * 32
        yield node.save(record)
        stored = yield node.get("s1", record.entry)
        self.assertEqual((stored.sha256, stored.claimed_until), ("ab" * 32, NOW + 30))

    @defer.inlineCallbacks
    def test_save_moves_the_deadline_in_the_expiry_index(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(deadline=NOW - 1))
        record.deadline = NOW + 100
        yield node.save(record)
        self.assertEqual((yield node.take_due(NOW)), [])
        record.deadline = NOW - 1
        yield node.save(record)
        self.assertEqual([r.entry for r in (yield node.take_due(NOW))], [record.entry])

    @defer.inlineCallbacks
    def test_save_without_deadline_leaves_the_expiry_index(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(deadline=NOW - 1))
        record.deadline = None
        yield node.save(record)
        self.assertEqual((yield node.take_due(NOW + 10**6)), [])


class TakeOverTests(RedisTestCase):
    """take_over moves ownership atomically and tells the previous owner."""

    @defer.inlineCallbacks
    def test_take_over_returns_the_record_as_it_was_and_changes_the_owner(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        record = yield self.admitted(a, entry_record(status="paused"))
        previous = yield b.take_over("s1", record.entry)
        stored = yield a.get("s1", record.entry)
        self.assertEqual((previous.server, stored.server), ("node-a", "node-b"))

    @defer.inlineCallbacks
    def test_take_over_publishes_moved_to_the_previous_owner(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        events, first, callback = event_waiter()
        yield a.subscribe(callback)
        record = yield self.admitted(a)
        yield b.take_over("s1", record.entry)
        event = yield first
        self.assertEqual(event, {"event": "moved", "session": "s1", "entry": record.entry, "to": "node-b"})

    @defer.inlineCallbacks
    def test_take_over_of_an_entry_in_another_state_is_none(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        record = yield self.admitted(a, entry_record(status="complete"))
        self.assertEqual(((yield b.take_over("s1", record.entry)), (yield a.get("s1", record.entry)).server),
                         (None, "node-a"))

    @defer.inlineCallbacks
    def test_move_hands_the_entry_to_the_new_session(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(status="paused"))
        moved = yield node.move("s1", "s2", record.entry)
        self.assertEqual((moved.session, (yield node.session_records("s1")), (yield node.get("s2", record.entry))),
                         ("s2", [], moved))

    @defer.inlineCallbacks
    def test_move_into_a_full_session_is_refused(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(status="paused"))
        yield self.admitted(node, entry_record("s2"))
        error = yield self.assertFailure(node.move("s1", "s2", record.entry, max_session_entries=1), UploadError)
        self.assertEqual((error.code, (yield node.get("s1", record.entry)).session),
                         (ErrorCode.TOO_MANY_ENTRIES, "s1"))

    @defer.inlineCallbacks
    def test_move_of_a_complete_entry_is_none(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(status="complete"))
        self.assertIsNone((yield node.move("s1", "s2", record.entry)))


class ClaimTests(RedisTestCase):
    """A complete entry is claimed by one request; a claimed entry outlives cancel and its TTL."""

    @defer.inlineCallbacks
    def complete_entries(self, node: RedisState, count: int, deadline: float = NOW + 100) -> Any:
        records = []
        for index in range(count):
            records.append((yield self.admitted(node, entry_record(status="complete", ref=f"r{index}",
                                                                   deadline=deadline))))
        return records

    @defer.inlineCallbacks
    def test_racing_claims_never_both_get_an_entry(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        records = yield self.complete_entries(a, 5)
        claims = yield defer.gatherResults([node.claim_complete("s1", "files", 60, NOW)
                                            for _ in range(5) for node in (a, b)])
        claimed = [record.entry for claim in claims for record in claim]
        self.assertEqual(sorted(claimed), sorted(record.entry for record in records))

    @defer.inlineCallbacks
    def test_claim_takes_only_complete_entries_of_the_slot(self) -> Any:
        node = yield self.node("node-a")
        wanted = yield self.admitted(node, entry_record(status="complete"))
        yield self.admitted(node, entry_record(status="uploading", ref="r2"))
        yield self.admitted(node, entry_record(status="complete", slot="other", ref="r3"))
        claimed = yield node.claim_complete("s1", "files", 60, NOW)
        self.assertEqual([(r.entry, r.claimed_until) for r in claimed], [(wanted.entry, NOW + 60)])

    @defer.inlineCallbacks
    def test_claim_skips_entries_past_their_deadline(self) -> Any:
        node = yield self.node("node-a")
        yield self.complete_entries(node, 1, deadline=NOW - 1)
        self.assertEqual((yield node.claim_complete("s1", "files", 60, NOW)), [])

    @defer.inlineCallbacks
    def test_an_expired_claim_can_be_claimed_again(self) -> Any:
        node = yield self.node("node-a")
        yield self.complete_entries(node, 1, deadline=NOW + 1000)
        yield node.claim_complete("s1", "files", 60, NOW)
        again = yield node.claim_complete("s1", "files", 60, NOW + 61)
        self.assertEqual([r.claimed_until for r in again], [NOW + 121])

    @defer.inlineCallbacks
    def test_release_gives_the_entry_back(self) -> Any:
        node = yield self.node("node-a")
        (record,) = yield self.complete_entries(node, 1)
        yield node.claim_complete("s1", "files", 60, NOW)
        removed = yield node.release("s1", [record.entry], NOW + 1)
        again = yield node.claim_complete("s1", "files", 60, NOW + 2)
        self.assertEqual((removed, [r.entry for r in again]), ([], [record.entry]))

    @defer.inlineCallbacks
    def test_claimed_entry_outlives_cancel_until_release(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        (record,) = yield self.complete_entries(a, 1)
        yield a.claim_complete("s1", "files", 60, NOW)
        cancelled = yield b.cancel("s1", record.entry, now=NOW + 1)
        still = yield b.get("s1", record.entry)
        removed = yield a.release("s1", [record.entry], NOW + 2)
        self.assertEqual((cancelled.cancel_pending, still.status, [r.entry for r in removed],
                          (yield a.get("s1", record.entry))), (True, "complete", [record.entry], None))

    @defer.inlineCallbacks
    def test_claimed_entry_outlives_its_deadline_until_release(self) -> Any:
        node = yield self.node("node-a")
        (record,) = yield self.complete_entries(node, 1, deadline=NOW + 10)
        yield node.claim_complete("s1", "files", 60, NOW)
        due = yield node.take_due(NOW + 20)
        removed = yield node.release("s1", [record.entry], NOW + 21)
        self.assertEqual((due, [r.entry for r in removed]), ([], [record.entry]))

    @defer.inlineCallbacks
    def test_consumed_entry_is_gone(self) -> Any:
        node = yield self.node("node-a")
        (record,) = yield self.complete_entries(node, 1)
        yield node.claim_complete("s1", "files", 60, NOW)
        consumed = yield node.consume("s1", record.entry)
        self.assertEqual((consumed.entry, (yield node.consume("s1", record.entry)),
                          (yield node.session_records("s1"))), (record.entry, None, []))


class CancelTests(RedisTestCase):
    """cancel by id or ref, with what happens to each state, and the owner node told."""

    @defer.inlineCallbacks
    def test_cancel_reaches_the_owner_nodes_subscriber(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        events, first, callback = event_waiter()
        yield a.subscribe(callback)
        record = yield self.admitted(a)
        yield b.cancel("s1", "r1", now=NOW)
        event = yield first
        self.assertEqual(event, {"event": "cancel", "session": "s1", "entry": record.entry})

    @defer.inlineCallbacks
    def test_cancel_of_a_streaming_entry_keeps_it_cancelled_for_the_cancelled_ttl(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        cancelled = yield node.cancel("s1", str(record.entry), now=NOW, cancelled_ttl=60)
        early = yield node.take_due(NOW + 59)
        late = yield node.take_due(NOW + 61)
        self.assertEqual((cancelled.status, cancelled.error, cancelled.deadline, early, [r.entry for r in late]),
                         ("cancelled", "cancelled", NOW + 60, [], [record.entry]))

    @defer.inlineCallbacks
    def test_cancel_of_a_finished_entry_removes_it(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(status="complete", location="/x/1"))
        cancellation = yield node.cancel_entry("s1", record.entry, now=NOW)
        self.assertEqual((cancellation.outcome, cancellation.previous_status, cancellation.record.status,
                          cancellation.record.location, (yield node.get("s1", record.entry))),
                         ("removed", "complete", "cancelled", "/x/1", None))

    @defer.inlineCallbacks
    def test_cancel_of_a_paused_entry_removes_it(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node, entry_record(status="paused"))
        cancellation = yield node.cancel_entry("s1", "r1", now=NOW)
        self.assertEqual((cancellation.outcome, (yield node.get("s1", record.entry))), ("removed", None))

    @defer.inlineCallbacks
    def test_cancel_twice_changes_nothing_the_second_time(self) -> Any:
        node = yield self.node("node-a")
        yield self.admitted(node)
        yield node.cancel("s1", "r1", now=NOW)
        again = yield node.cancel_entry("s1", "r1", now=NOW + 1)
        self.assertEqual((again.outcome, again.record.deadline), ("noop", NOW + 60))

    @defer.inlineCallbacks
    def test_cancel_of_an_unknown_entry_is_unknown_entry(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        for session, ref in (("s1", "nope"), ("s1", 12345), ("s2", record.entry), ("s2", "r1")):
            error = yield self.assertFailure(node.cancel(session, ref, now=NOW), UploadError)
            self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)


class ExpiryTests(RedisTestCase):
    """take_due removes exactly the due, unclaimed records, once."""

    @defer.inlineCallbacks
    def test_take_due_removes_exactly_the_due_unclaimed_records(self) -> Any:
        node = yield self.node("node-a")
        due = yield self.admitted(node, entry_record(status="paused", ref="due", deadline=NOW - 5))
        yield self.admitted(node, entry_record(status="complete", ref="later", deadline=NOW + 5))
        yield self.admitted(node, entry_record(status="uploading", ref="streaming"))
        claimed = yield self.admitted(node, entry_record("s2", status="complete", ref="claimed", deadline=NOW - 5))
        yield node.claim_complete("s2", "files", 60, NOW - 6)
        pending = yield self.admitted(node, entry_record("s3", status="complete", ref="p", deadline=NOW + 500))
        yield node.claim_complete("s3", "files", 5, NOW - 10)  # its claim ended at NOW - 5, unreleased
        yield node.cancel("s3", "p", now=NOW - 8)
        taken = yield node.take_due(NOW)
        listings = yield defer.gatherResults([node.session_records(s) for s in ("s1", "s2", "s3")])
        left = [record.ref for listing in listings for record in listing]
        self.assertEqual((sorted(r.entry for r in taken), sorted(left)),
                         (sorted([due.entry, pending.entry]), ["claimed", "later", "streaming"]))
        self.assertIsNotNone(claimed)

    @defer.inlineCallbacks
    def test_take_due_respects_its_limit_and_finds_the_rest_later(self) -> Any:
        node = yield self.node("node-a")
        for index in range(5):
            yield self.admitted(node, entry_record(ref=f"r{index}", deadline=NOW - index))
        first = yield node.take_due(NOW, limit=3)
        second = yield node.take_due(NOW, limit=3)
        self.assertEqual((len(first), len(second), (yield node.session_records("s1"))), (3, 2, []))

    @defer.inlineCallbacks
    def test_racing_take_due_gives_each_record_to_one_node(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        for index in range(20):
            yield self.admitted(a, entry_record(ref=f"r{index}", deadline=NOW - 1))
        batches = yield defer.gatherResults([node.take_due(NOW, limit=3) for _ in range(5) for node in (a, b)])
        taken = [record.entry for batch in batches for record in batch]
        self.assertEqual((len(taken), len(set(taken))), (20, 20))


class NodeTests(RedisTestCase):
    """Heartbeats and per-node channels."""

    @defer.inlineCallbacks
    def test_alive_nodes_lists_the_connected_nodes(self) -> Any:
        a, _b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        self.assertEqual((yield a.alive_nodes()), {"node-a", "node-b"})

    @defer.inlineCallbacks
    def test_a_closed_node_is_not_alive(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        yield b.close()
        self.assertEqual((yield a.alive_nodes()), {"node-a"})

    @defer.inlineCallbacks
    def test_a_node_whose_heartbeat_ran_out_is_not_alive(self) -> Any:
        a = yield self.node("node-a")
        yield a.publish("nobody", {})  # connected
        # What a node that died leaves once its heartbeat key expired: its id in the set, no key.
        self.server.command("SADD", "tu:nodes", "ghost")
        self.assertEqual((yield a.alive_nodes()), {"node-a"})

    @defer.inlineCallbacks
    def test_node_ids_are_unique_by_default(self) -> Any:
        states = yield defer.gatherResults([RedisState.connect(self.server.url, timeout=1.0) for _ in range(2)])
        for state in states:
            self.addCleanup(state.close)
        self.assertEqual(len({state.node_id for state in states}), 2)

    @defer.inlineCallbacks
    def test_events_go_only_to_the_addressed_node(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        a_events, a_first, a_callback = event_waiter()
        b_events, b_first, b_callback = event_waiter()
        yield defer.gatherResults([a.subscribe(a_callback), b.subscribe(b_callback)])
        receivers = yield b.publish("node-a", {"event": "ping"})
        # Redis delivers in publish order: once b has its own later event, a's event would have reached it first.
        yield a.publish("node-b", {"event": "marker"})
        yield defer.gatherResults([a_first, b_first])
        self.assertEqual((receivers, a_events, b_events), (1, [{"event": "ping"}], [{"event": "marker"}]))


class RestartTests(RedisTestCase):
    """A Redis restart: the subscriber subscribes again, scripts are loaded again."""

    persistent = True

    @defer.inlineCallbacks
    def test_subscriber_survives_a_redis_restart(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        events, first, callback = event_waiter()
        generation = yield a.subscribe(callback)
        self.server.restart()
        yield a.subscription(after=generation, timeout=15)
        receivers = yield b.publish("node-a", {"event": "after-restart"})
        self.assertEqual((receivers, (yield first)), (1, {"event": "after-restart"}))

    @defer.inlineCallbacks
    def test_records_and_scripts_work_after_a_restart(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        generation = yield node.subscription()
        self.server.restart()
        yield node.subscription(after=generation, timeout=15)  # reconnected
        second = yield self.admitted(node, entry_record(ref="r2"))
        listed = yield node.session_records("s1")
        self.assertEqual([r.entry for r in listed], [record.entry, second.entry])


class UnavailableTests(RedisTestCase):
    """Down, refusing, erring or silent: registry_unavailable naming the URL, within the timeout, never a hang."""

    timeout_seconds = 0.5

    def assertUnavailable(self, error: UploadError, url: str) -> None:
        self.assertEqual(error.code, ErrorCode.REGISTRY_UNAVAILABLE)
        self.assertIn(url, error.message)

    @defer.inlineCallbacks
    def test_connect_to_a_stopped_redis_is_unavailable_at_once(self) -> Any:
        url = self.server.url
        self.server.stop()
        started = reactor.seconds()
        error = yield self.assertFailure(RedisState.connect(url, timeout=5.0), UploadError)
        self.assertUnavailable(error, url)
        self.assertLess(reactor.seconds() - started, 2.5)  # the refusal, not the 5 s timeout

    @defer.inlineCallbacks
    def test_connect_to_a_port_nobody_listens_on_is_unavailable(self) -> Any:
        url = f"redis://127.0.0.1:{free_port()}"
        error = yield self.assertFailure(RedisState.connect(url, timeout=0.5), UploadError)
        self.assertUnavailable(error, url)

    @defer.inlineCallbacks
    def test_calls_after_redis_stopped_are_unavailable_without_waiting_for_the_timeout(self) -> Any:
        node = yield self.node("node-a", timeout=5.0)
        self.server.stop()
        started = reactor.seconds()
        for call in (lambda: self.admitted(node), lambda: node.get("s1", 1), lambda: node.take_due(NOW),
                     lambda: node.claim_complete("s1", "files", 1, NOW), lambda: node.publish("x", {})):
            error = yield self.assertFailure(call(), UploadError)
            self.assertUnavailable(error, self.server.url)
        # The refused reconnection ends them, not the 5 s timeout (five calls would take 25 s).
        self.assertLess(reactor.seconds() - started, 2.5)

    @defer.inlineCallbacks
    def test_a_paused_redis_is_unavailable_after_the_timeout(self) -> Any:
        node = yield self.node("node-a")
        # CLIENT PAUSE answers at once and then holds every command: a Redis slower than the timeout, from a known
        # moment on (a DEBUG SLEEP sent on another connection might run after the call it should delay).
        self.server.command("CLIENT", "PAUSE", "1500", "ALL")
        started = reactor.seconds()
        error = yield self.assertFailure(node.session_records("s1"), UploadError)
        elapsed = reactor.seconds() - started
        self.assertUnavailable(error, self.server.url)
        self.assertIn("did not answer (list) within 0.5 s", error.message)
        self.assertTrue(self.timeout_seconds * 0.9 <= elapsed < self.timeout_seconds + 1, elapsed)

    @defer.inlineCallbacks
    def test_a_stopped_process_is_unavailable_and_recovers_when_it_continues(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        self.server.pause()
        try:
            started = reactor.seconds()
            error = yield self.assertFailure(node.get("s1", record.entry), UploadError)
            elapsed = reactor.seconds() - started
        finally:
            self.server.resume()
        self.assertUnavailable(error, self.server.url)
        self.assertLess(elapsed, self.timeout_seconds + 1)
        self.assertEqual((yield node.get("s1", record.entry)), record)

    @defer.inlineCallbacks
    def test_a_redis_error_reply_is_unavailable(self) -> Any:
        node = yield self.node("node-a")
        self.server.command("CONFIG", "SET", "maxmemory", "1")  # every write is now refused (OOM)
        error = yield self.assertFailure(self.admitted(node), UploadError)
        self.assertUnavailable(error, self.server.url)
        self.assertIn("OOM", error.message)

    @defer.inlineCallbacks
    def test_waiting_for_the_subscription_while_redis_is_down_is_bounded(self) -> Any:
        node = yield self.node("node-a")
        generation = yield node.subscription()
        self.server.stop()
        error = yield self.assertFailure(node.subscription(after=generation), UploadError)
        self.assertUnavailable(error, self.server.url)

    def logged(self, text: str) -> "defer.Deferred[None]":
        """Fires when a log event whose text contains ``text`` is emitted (within a bounded deadline)."""
        seen: defer.Deferred[None] = defer.Deferred()

        def observer(event: dict[str, Any]) -> None:
            if not seen.called and text in (formatEvent(event) or ""):
                seen.callback(None)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return seen.addTimeout(15, reactor)

    @defer.inlineCallbacks
    def test_the_heartbeat_outlives_a_redis_outage(self) -> Any:
        node = yield self.node("node-a", heartbeat_ttl=0.3)  # beats every 0.1 s
        failed, renewed = self.logged("could not renew its heartbeat"), self.logged("renewed its heartbeat again")
        self.server.stop()
        yield failed
        self.server.restart()  # an empty Redis: only a new beat can bring the node's key back
        yield renewed
        self.assertEqual((yield node.alive_nodes()), {"node-a"})

    @defer.inlineCallbacks
    def test_the_message_never_shows_the_password(self) -> Any:
        url = f"redis://user:s3cret@127.0.0.1:{free_port()}/2"
        error = yield self.assertFailure(RedisState.connect(url, timeout=0.5), UploadError)
        self.assertNotIn("s3cret", error.message)
        self.assertIn("redis://user:***@127.0.0.1", error.message)

    @defer.inlineCallbacks
    def test_a_malformed_url_is_unavailable_saying_why(self) -> Any:
        error = yield self.assertFailure(RedisState.connect("http://127.0.0.1:1", timeout=0.5), UploadError)
        self.assertEqual((error.code, "redis://" in error.message), (ErrorCode.REGISTRY_UNAVAILABLE, True))


class OrphanTests(RedisTestCase):
    """A node that died streaming: a live node takes its entries over, each exactly once."""

    @defer.inlineCallbacks
    def dead_node_with_entries(self) -> Any:
        dead = yield self.node("node-dead")
        streaming = yield self.admitted(dead, entry_record(ref="streaming"))
        paused = yield self.admitted(dead, entry_record(ref="paused", status="paused", deadline=NOW + 60))
        yield dead.close()  # its heartbeat is gone, as when its TTL runs out
        return streaming, paused

    @defer.inlineCallbacks
    def test_a_live_node_takes_over_what_a_dead_node_was_streaming(self) -> Any:
        streaming, _paused = yield self.dead_node_with_entries()
        live = yield self.node("node-live")
        taken = yield live.take_orphans()
        again = yield live.take_orphans()
        stored = yield live.get("s1", streaming.entry)
        self.assertEqual(([(r.entry, r.server) for r in taken], again, stored.server),
                         ([(streaming.entry, "node-dead")], [], "node-live"))

    @defer.inlineCallbacks
    def test_racing_nodes_take_each_orphan_once(self) -> Any:
        dead = yield self.node("node-dead")
        admitted = []
        for index in range(10):
            admitted.append((yield self.admitted(dead, entry_record(f"s{index}"))).entry)
        yield dead.close()
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        batches = yield defer.gatherResults([node.take_orphans(limit=2) for _ in range(5) for node in (a, b)])
        taken = [record.entry for batch in batches for record in batch]
        self.assertEqual(sorted(taken), sorted(admitted))

    @defer.inlineCallbacks
    def test_a_live_nodes_entries_are_not_orphans(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        yield self.admitted(a)
        self.assertEqual((yield b.take_orphans()), [])

    @defer.inlineCallbacks
    def test_an_entry_taken_over_by_a_live_node_is_no_orphan_of_the_dead_one(self) -> Any:
        streaming, _paused = yield self.dead_node_with_entries()
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        yield a.take_over("s1", streaming.entry)
        self.assertEqual((yield b.take_orphans()), [])


class PasswordTests(RedisTestCase):
    """A Redis with ``requirepass``: the URL's password is used, a wrong one is a clear error without it."""

    password = "right-horse-battery"

    @defer.inlineCallbacks
    def test_a_node_with_the_password_works(self) -> Any:
        node = yield self.node("node-a")
        record = yield self.admitted(node)
        self.assertEqual((yield node.get("s1", record.entry)), record)

    @defer.inlineCallbacks
    def test_events_reach_a_node_on_a_redis_with_a_password(self) -> Any:
        a, b = yield defer.gatherResults([self.node("node-a"), self.node("node-b")])
        events, first, callback = event_waiter()
        yield a.subscribe(callback)
        yield b.publish("node-a", {"event": "hello"})
        self.assertEqual((yield first), {"event": "hello"})

    @defer.inlineCallbacks
    def test_a_wrong_password_is_unavailable_and_never_shown(self) -> Any:
        url = f"redis://:wrong-password@127.0.0.1:{self.server.port}"
        started = reactor.seconds()
        error = yield self.assertFailure(RedisState.connect(url, timeout=1.0), UploadError)
        self.assertEqual((error.code, "wrong-password" in error.message, "127.0.0.1" in error.message),
                         (ErrorCode.REGISTRY_UNAVAILABLE, False, True))
        self.assertIn("WRONGPASS", error.message)
        self.assertLess(reactor.seconds() - started, 0.9)  # the refusal, not the 1 s timeout
