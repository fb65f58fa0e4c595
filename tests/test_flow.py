"""The adaptive window (twisted_uploads.flow), on a task.Clock: its rules one by one, then whole uploads through a
simulated link (rate + delay, every event a callLater) driven the way the connection would drive it."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_uploads.flow import WindowController

KiB = 1024
MiB = 1024 * 1024
GBIT = 125_000_000  # bytes per second


def controller(clock: Clock, chunk: int = 1000, initial: int = 4000, maximum: int = 64000,
               **kwargs) -> WindowController:
    return WindowController(clock, chunk, initial, maximum=maximum, **kwargs)


class SimulatedUpload:
    """A window-respecting client sending through a link of `rate` bytes/s and `rtt` seconds to a server that
    drives the controller as the connection would: accepted, received per chunk, acked every ack_step."""

    def __init__(self, clock: Clock, flow: WindowController, rate: float, rtt: float, size: int = 1 << 40,
                 chunk: int = 64 * KiB, app_rate: float | None = None) -> None:
        self.clock, self.flow, self.rate, self.owd = clock, flow, rate, rtt / 2
        self.size, self.chunk, self.app_rate = size, chunk, app_rate
        self.sent = self.acked = self.received = self.last_ack = 0
        self.link_free = self.app_free = 0.0
        self.arrivals: list[tuple[float, int]] = []
        window = flow.accepted(0)
        self.windows = [(clock.seconds(), window)]
        self.window = 0
        clock.callLater(self.owd, self.client_ack, 0, window)

    def client_ack(self, offset: int, window: int) -> None:
        self.acked = max(self.acked, offset)
        self.window = window
        now = self.clock.seconds()
        while self.sent < self.size and self.sent - self.acked < self.window:
            n = min(self.chunk, self.size - self.sent)
            start = max(now, self.link_free, self.app_free)
            if self.app_rate:
                self.app_free = start + n / self.app_rate
            self.link_free = start + n / self.rate
            self.sent += n
            self.clock.callLater(self.link_free + self.owd - now, self.server_data, self.sent)

    def server_data(self, end: int) -> None:
        self.flow.received(end)
        self.received = end
        self.arrivals.append((self.clock.seconds(), end))
        if end - self.last_ack >= self.flow.ack_step or end == self.size:
            self.last_ack = end
            window = self.flow.acked(end)
            if window != self.windows[-1][1]:
                self.windows.append((self.clock.seconds(), window))
            self.clock.callLater(self.owd, self.client_ack, end, window)

    def run_until(self, t: float) -> None:
        clock = self.clock
        while clock.calls and clock.calls[0].getTime() <= t:
            clock.advance(clock.calls[0].getTime() - clock.seconds())
        clock.advance(max(0.0, t - clock.seconds()))

    def rate_between(self, t0: float, t1: float) -> float:
        """Bytes per second that arrived at the server between t0 and t1."""
        before = max((end for t, end in self.arrivals if t <= t0), default=0)
        upto = max((end for t, end in self.arrivals if t <= t1), default=0)
        return (upto - before) / (t1 - t0)


class StartingWindow(SynchronousTestCase):
    def test_the_first_window_is_the_initial_one(self) -> None:
        self.assertEqual(controller(Clock()).accepted(0), 4000)

    def test_windows_are_whole_chunks(self) -> None:
        flow = controller(Clock(), initial=4500, maximum=9999)
        self.assertEqual((flow.window, flow.maximum), (4000, 9000))

    def test_the_ack_step_is_a_quarter_of_the_window_and_at_least_a_chunk(self) -> None:
        self.assertEqual(controller(Clock(), initial=8000).ack_step, 2000)
        self.assertEqual(controller(Clock(), initial=4000, minimum=1000).ack_step, 1000)

    def test_inconsistent_limits_are_refused(self) -> None:
        for kwargs in ({"initial": 4000, "maximum": 3000}, {"initial": 4000, "minimum": 5000},
                       {"initial": 4000, "minimum": 0}, {"gain": 0.5}, {"initial": 4000, "floor": 8000},
                       {"initial": 4000, "minimum": 3000, "floor": 2000}):
            with self.subTest(**kwargs):
                args = {"initial": 4000, "maximum": 64000, **kwargs}
                self.assertRaises(ValueError, WindowController, Clock(), 1000, args.pop("initial"), **args)

    def test_a_zero_chunk_size_is_refused(self) -> None:
        self.assertRaises(ValueError, WindowController, Clock(), 0, 4000, maximum=8000)


class RoundTripTime(SynchronousTestCase):
    def test_the_first_data_after_accepted_measures_the_round_trip(self) -> None:
        clock = Clock()
        flow = controller(clock)
        flow.accepted(0)
        clock.advance(0.05)
        flow.received(1000)
        self.assertAlmostEqual(flow.min_rtt, 0.05)

    def test_a_resumed_entry_measures_from_its_offset(self) -> None:
        clock = Clock()
        flow = controller(clock)
        flow.accepted(10_000)
        clock.advance(0.02)
        flow.received(10_000)  # nothing past the offset yet
        self.assertIsNone(flow.min_rtt)
        flow.received(11_000)
        self.assertAlmostEqual(flow.min_rtt, 0.02)

    def test_bytes_inside_the_previous_limit_do_not_end_a_sample(self) -> None:
        clock = Clock()
        flow = controller(clock)
        flow.accepted(0)  # limit 4000
        clock.advance(0.050)
        flow.received(1000)  # a 50 ms sample
        flow.acked(1000)  # lifts the limit to 5000 at t = 50 ms
        clock.advance(0.010)
        flow.received(4000)  # within the old limit: could have been sent before that ack arrived
        self.assertAlmostEqual(flow.min_rtt, 0.050)
        clock.advance(0.030)
        flow.received(5000)  # past 4000: sent after the ack of t = 50 ms arrived, 40 ms ago
        self.assertAlmostEqual(flow.min_rtt, 0.040)

    def test_the_minimum_sample_is_kept(self) -> None:
        clock = Clock()
        flow = controller(clock)
        flow.accepted(0)
        clock.advance(0.030)
        flow.received(1000)
        flow.acked(1000)
        clock.advance(0.020)
        flow.received(5000)
        self.assertAlmostEqual(flow.min_rtt, 0.020)
        flow.acked(5000)
        clock.advance(0.040)
        flow.received(9000)
        self.assertAlmostEqual(flow.min_rtt, 0.020)

    def test_a_shrunk_window_does_not_lower_the_limit_samples_are_measured_against(self) -> None:
        clock = Clock()
        flow = controller(clock, initial=8000)
        flow.accepted(0)  # limit 8000
        clock.advance(0.010)
        flow.received(1000)
        flow.set_share(4000)
        flow.acked(1000)  # window 4000: offset + window = 5000 < 8000, nothing new granted
        self.assertEqual(flow.limit, 8000)
        clock.advance(0.001)
        flow.received(7000)  # bytes the client was allowed before the shrink: no sample from them
        self.assertAlmostEqual(flow.min_rtt, 0.010)


class Growth(SynchronousTestCase):
    def test_a_long_fat_link_grows_the_window_to_about_gain_times_the_bandwidth_delay_product(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(2.0)
        bdp = GBIT * 0.1
        self.assertGreaterEqual(flow.window, 0.8 * flow.gain * bdp)
        self.assertLessEqual(flow.window, 1.2 * flow.gain * bdp)

    def test_a_long_fat_link_is_filled(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(2.5)
        self.assertGreaterEqual(upload.rate_between(2.0, 2.5), 0.95 * GBIT)

    def test_a_fixed_window_on_the_same_link_is_capped_at_window_per_rtt(self) -> None:
        # The simulator itself: without room to grow, 4 MiB per 100 ms is all one upload gets.
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=4 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(2.5)
        self.assertLess(upload.rate_between(2.0, 2.5), 0.4 * GBIT)

    def test_the_window_at_most_doubles_per_round_trip(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.05)
        upload.run_until(1.5)
        growth = [(t, w) for (t, w), (_, before) in zip(upload.windows[1:], upload.windows) if w > before]
        self.assertGreater(len(growth), 2)
        for (t0, _), (t1, _) in zip(growth, growth[1:]):
            self.assertGreaterEqual(t1 - t0, 0.05)
        for (_, before), (_, w) in zip(upload.windows, upload.windows[1:]):
            self.assertLessEqual(w, 2 * before)

    def test_one_step_at_most_doubles_the_window_however_large_the_estimate(self) -> None:
        clock = Clock()
        flow = controller(clock, maximum=10**6)
        flow.accepted(0)
        clock.advance(0.01)
        flow.received(1000)  # min_rtt 10 ms
        flow.acked(1000)
        clock.advance(0.01)
        flow.received(100_000)  # a burst: 99 kB in one round trip, a BDP estimate of 99 kB
        self.assertEqual(flow.acked(100_000), 8000)

    def test_rtt_and_rate_are_measured_on_a_saturated_link(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.05)
        upload.run_until(1.5)
        self.assertGreaterEqual(flow.min_rtt, 0.05)
        self.assertLessEqual(flow.min_rtt, 0.052)
        self.assertAlmostEqual(flow.delivery_rate / GBIT, 1.0, delta=0.1)

    def test_a_short_link_keeps_the_initial_window(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=1e9, rtt=0.0003)
        upload.run_until(0.5)
        self.assertEqual(flow.window, 4 * MiB)
        self.assertEqual([w for _, w in upload.windows], [4 * MiB])

    def test_a_client_slower_than_its_window_allows_does_not_grow_it(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1, app_rate=15e6)
        upload.run_until(3.0)
        self.assertEqual(flow.window, 4 * MiB)

    def test_growth_stops_at_the_maximum(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=16 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(1.5)
        self.assertEqual(max(w for _, w in upload.windows), 16 * MiB)

    def test_growth_stops_at_the_share_of_the_budget(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        flow.set_share(10 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(1.5)
        self.assertEqual(max(w for _, w in upload.windows), 10 * MiB)


class Shrinking(SynchronousTestCase):
    def saturated(self) -> tuple[Clock, WindowController, SimulatedUpload]:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(1.5)
        return clock, flow, upload

    def test_a_smaller_share_shrinks_the_window_at_once(self) -> None:
        _, flow, _ = self.saturated()
        flow.set_share(2 * MiB)
        self.assertEqual(flow.window, 2 * MiB)

    def test_a_share_never_takes_the_window_below_the_minimum(self) -> None:
        flow = WindowController(Clock(), 64 * KiB, 4 * MiB, maximum=64 * MiB)
        flow.set_share(1000)
        self.assertEqual(flow.window, 4 * 64 * KiB)

    def test_the_window_follows_a_smaller_share_in_a_running_upload(self) -> None:
        clock, flow, upload = self.saturated()
        flow.set_share(6 * MiB)
        upload.run_until(2.5)
        self.assertEqual(max(w for t, w in upload.windows if t > 1.5), 6 * MiB)
        self.assertLess(upload.rate_between(2.0, 2.5), 0.6 * GBIT)

    def test_a_writer_backlog_halves_the_window(self) -> None:
        _, flow, _ = self.saturated()
        before = flow.window
        flow.backlog(flow.backlog_limit + 1)
        self.assertEqual(flow.window, before // 2 // (64 * KiB) * (64 * KiB))

    def test_a_backlog_within_the_limit_changes_nothing(self) -> None:
        _, flow, _ = self.saturated()
        before = flow.window
        flow.backlog(flow.backlog_limit)
        self.assertEqual(flow.window, before)

    def test_repeated_backlog_reports_within_a_round_trip_halve_once(self) -> None:
        clock, flow, _ = self.saturated()
        before = flow.window
        for _ in range(5):
            flow.backlog(flow.backlog_limit + 1)
            clock.advance(0.01)
        self.assertEqual(flow.window, before // 2 // (64 * KiB) * (64 * KiB))

    def test_a_backlog_a_round_trip_later_halves_again(self) -> None:
        clock, flow, _ = self.saturated()
        before = flow.window
        flow.backlog(flow.backlog_limit + 1)
        clock.advance(flow.min_rtt)
        flow.backlog(flow.backlog_limit + 1)
        self.assertEqual(flow.window, before // 4 // (64 * KiB) * (64 * KiB))

    def test_backlog_never_takes_the_window_below_the_minimum(self) -> None:
        clock = Clock()
        flow = controller(clock)
        flow.accepted(0)
        for _ in range(10):
            flow.backlog(10**9)
            clock.advance(1.0)
        self.assertEqual(flow.window, flow.minimum)

    def test_no_growth_while_the_writer_is_behind(self) -> None:
        clock, flow, upload = self.saturated()
        flow.backlog(flow.backlog_limit + 1)
        halved = flow.window
        upload.run_until(2.5)
        self.assertEqual(flow.window, halved)

    def test_growth_resumes_once_the_writer_has_caught_up(self) -> None:
        clock, flow, upload = self.saturated()
        flow.backlog(flow.backlog_limit + 1)
        halved = flow.window
        flow.backlog(0)
        upload.run_until(2.5)
        self.assertGreater(flow.window, halved)

    def test_after_a_backlog_the_floor_is_the_reduced_window(self) -> None:
        clock = Clock()
        flow = controller(clock, initial=8000)
        flow.accepted(0)
        clock.advance(0.01)
        flow.received(1000)
        flow.backlog(10**9)
        self.assertEqual((flow.window, flow.floor), (4000, 4000))


class Startup(SynchronousTestCase):
    """Slow start: the window doubles per round while the client is window-limited, until the rate stops
    growing; then it drains to the steady window (about twice the bandwidth-delay product)."""

    def test_the_window_doubles_each_round_while_the_client_is_window_limited(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(0.6)
        self.assertTrue(flow.startup)
        self.assertEqual([w for _, w in upload.windows], [4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB, 64 * MiB])

    def test_startup_ends_when_the_rate_stops_growing_and_drains_to_the_steady_window(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(1.5)
        self.assertFalse(flow.startup)
        bdp = GBIT * 0.1
        self.assertLess(flow.window, max(w for _, w in upload.windows))
        self.assertGreaterEqual(flow.window, 0.8 * flow.gain * bdp)
        self.assertLessEqual(flow.window, 1.2 * flow.gain * bdp)

    def test_a_large_first_window_fills_a_long_fat_link_from_the_first_round_trip(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 16 * MiB, floor=4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1, size=256 * MiB)
        upload.run_until(5.0)
        done = next(t for t, end in upload.arrivals if end == 256 * MiB)
        self.assertAlmostEqual(done, 256 * MiB / GBIT + 0.1, delta=0.01)

    def test_a_large_first_window_drains_to_the_floor_on_a_short_link(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 16 * MiB, floor=4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.002)
        upload.run_until(0.5)
        self.assertFalse(flow.startup)
        self.assertEqual(flow.window, 4 * MiB)

    def test_a_slow_link_drains_the_first_window_to_its_own_steady_window(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 16 * MiB, floor=256 * KiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=12.5e6, rtt=0.05)  # 100 Mbit/s: a 625 kB product
        upload.run_until(5.0)
        self.assertFalse(flow.startup)
        self.assertLessEqual(flow.window, 1.2 * flow.gain * 12.5e6 * 0.05)

    def test_a_writer_backlog_ends_startup(self) -> None:
        clock = Clock()
        flow = WindowController(clock, 64 * KiB, 4 * MiB, maximum=64 * MiB)
        upload = SimulatedUpload(clock, flow, rate=GBIT, rtt=0.1)
        upload.run_until(0.25)
        self.assertTrue(flow.startup)
        flow.backlog(flow.backlog_limit + 1)
        self.assertFalse(flow.startup)
