"""10,000 hostile inputs over several sockets, next to good uploads that complete untouched.

Every input is followed by a probe (a cancel of an entry id no server hands out), whose ``unknown_entry`` answer
marks the point where the server has dealt with the input: so each input's answers are exactly the messages
before the probe's, and an input the server ignored is told apart from one it has not handled yet.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed

from twisted_uploads.codec import SERVER_MESSAGES
from twisted_uploads.errors import CLOSE_AUTH_TIMEOUT
from twisted_uploads.slots import SlotConfig

from .hostile import PROBE, PROBE_ENTRY, HostileInputs, hostile_token
from .support import (DOCUMENTED_CLOSE_CODES, NAMED_CODES, ProtocolClient, ServerTestCase,
                      files_with_digest, observe, record_figures, sha256_bytes, token, within)

SEED = 20261201
INPUTS = 10_000
WORKERS = 8
GOOD_FILE = 1024 * 1024
GOOD_FILES = 10
#: Seconds an input may go unanswered before it counts as a hang (the server's auth timeout is much longer).
HANG = 10.0


class Tally:
    """What the server did with each input, and every answer that broke the rules."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.inputs = 0
        self.connections = 0
        self.outcomes: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.violations: list[str] = []
        self._milestones: list[tuple[int, Deferred]] = []

    def take(self) -> bool:
        if self.inputs >= self.budget:
            return False
        self.inputs += 1
        due = [d for n, d in self._milestones if n <= self.inputs]
        self._milestones = [(n, d) for n, d in self._milestones if n > self.inputs]
        for waiter in due:
            waiter.callback(self.inputs)
        return True

    def reached(self, count: int) -> Deferred:
        """Fires once ``count`` inputs were taken (or at once if they were)."""
        if self.inputs >= count:
            return succeed(self.inputs)
        waiter: Deferred = Deferred()
        self._milestones.append((count, waiter))
        return waiter

    def judge(self, kind: str, is_binary: bool, answers: list[dict[str, Any]], closed: int | None | bool) -> None:
        self.kinds[kind] += 1
        for answer in answers:
            if answer.get("type") not in SERVER_MESSAGES:
                self.violations.append(f"{kind}: the server sent {answer!r}")
            elif "code" in answer and answer["code"] not in NAMED_CODES:
                self.violations.append(f"{kind}: unnamed code in {answer!r}")
        codes = [a["code"] for a in answers if "code" in a]
        if closed is not False:
            self.outcomes[f"closed {closed}"] += 1
            if closed not in DOCUMENTED_CLOSE_CODES:
                self.violations.append(f"{kind}: socket ended with close code {closed} after {answers!r}")
        elif codes:
            self.outcomes[f"answered {codes[-1]}"] += 1
        elif answers:
            self.outcomes[f"answered {answers[-1]['type']}"] += 1
        else:
            self.outcomes["dropped silently (a frame)" if is_binary else "unanswered"] += 1
            if not is_binary:
                self.violations.append(f"{kind}: a control message got no answer")


class HostileStreamTests(ServerTestCase):

    timeout = 180

    @inlineCallbacks
    def settle(self, client: ProtocolClient, mark: int, probe: bool) -> Any:
        """The server's answers to the input sent after message ``mark``, and its close code (False if open,
        None if it neither answered nor closed in time)."""
        try:
            if probe:
                client.send_text(PROBE)
                yield client.wait(lambda m: m.get("type") == "error" and m.get("entry") == PROBE_ENTRY, HANG)
            else:
                yield within(HANG, observe(client.closed), "the server closing the socket")
        except ConnectionError:
            pass
        except TimeoutError:
            answers = client.messages[mark:]
            yield client.abort()
            return answers, "no answer and no close"
        answers = [m for m in client.messages[mark:] if m.get("entry") != PROBE_ENTRY]
        return answers, (client.close_code if client.is_closed else False)

    @inlineCallbacks
    def hostile_worker(self, url: str, rng: random.Random, tally: Tally) -> Any:
        while tally.inputs < tally.budget:
            client = yield ProtocolClient.connect(url)
            tally.connections += 1
            try:
                inputs = HostileInputs(rng)
                if rng.random() < 0.08:
                    if not tally.take():
                        break
                    kind, payload, is_binary = inputs.before_auth()
                    (client.send_binary if is_binary else client.send_text)(payload)
                    answers, closed = yield self.settle(client, 0, probe=False)
                    tally.judge(kind, is_binary, answers, closed)
                    if closed is False and not client.is_closed:
                        tally.violations.append(f"{kind}: accepted before authentication: {answers!r}")
                    elif closed == CLOSE_AUTH_TIMEOUT:
                        tally.violations.append(f"{kind}: left unanswered until the auth timeout")
                    continue
                yield client.authenticate(hostile_token(rng))
                while not client.is_closed and tally.take():
                    kind, payload, is_binary = inputs.after_auth()
                    mark = len(client.messages)
                    (client.send_binary if is_binary else client.send_text)(payload)
                    answers, closed = yield self.settle(client, mark, probe=True)
                    inputs.observe(answers)
                    tally.judge(kind, is_binary, answers, closed)
            finally:
                yield client.abort()

    @inlineCallbacks
    def good_uploads(self, url: str, tally: Tally) -> Any:
        """One well-behaved socket uploading a file at each tenth of the hostile inputs."""
        client = yield ProtocolClient.connect(url)
        self.addCleanup(client.abort)
        yield client.authenticate(token(files=SlotConfig(max_file_size=10**8, max_entries=GOOD_FILES)))
        uploaded: list[bytes] = []
        for number in range(GOOD_FILES):
            yield within(HANG * 10, tally.reached(number * tally.budget // GOOD_FILES), "the hostile inputs")
            data = secrets.token_bytes(GOOD_FILE)
            accepted = yield client.announce(f"good{len(uploaded)}.bin", len(data))
            self.assertEqual(accepted["type"], "accepted", accepted)
            complete = yield client.stream(accepted, data)
            self.assertEqual(complete["sha256"], sha256_bytes(data))
            uploaded.append(data)
        self.assertFalse(client.is_closed, "the good socket was closed")
        self.assertEqual([m for m in client.messages if m.get("type") in ("error", "rejected")], [])
        return uploaded

    @inlineCallbacks
    def test_ten_thousand_hostile_inputs_are_each_answered_while_a_good_upload_completes(self):
        # An auth timeout far beyond HANG: an input left unanswered is a hang, never a timely-looking 4003.
        server = yield self.start_server(options=["--auth-timeout", str(HANG * 6)])
        url = self.ws_url(server)
        tally = Tally(INPUTS)
        good = self.good_uploads(url, tally)
        yield DeferredList([self.hostile_worker(url, random.Random(SEED + n), tally) for n in range(WORKERS)],
                           fireOnOneErrback=True, consumeErrors=True)
        uploaded = yield good

        self.assertEqual(tally.inputs, INPUTS)
        self.assertEqual(tally.violations[:20], [])
        for data in uploaded:
            self.assertTrue(files_with_digest(self.upload_dir, sha256_bytes(data)), "a good upload lost bytes")
        self.assertTrue(server.running)
        self.assertNoCrash(server)
        record_figures(self, faults={"hostile inputs": tally.inputs, "hostile sockets": tally.connections},
                       inputs=tally.inputs, files=len(uploaded), bytes_verified=len(uploaded) * GOOD_FILE,
                       bytes_lost=0, seed=SEED, outcomes=dict(tally.outcomes), kinds=dict(tally.kinds))
