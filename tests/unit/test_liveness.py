"""The liveness detector on real local sockets: a closed writer and a silent one are reported
dead once each; one that echoes its pings is not."""

import socket
import threading
import time

import pytest

from actors.liveness import Detector, Listener


class Deaths:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.event = threading.Event()

    def __call__(self, partition: int, member: int) -> None:
        self.seen.append((partition, member))
        self.event.set()


def _until(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def test_a_silent_writer_is_reported_dead_once() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog), never reads
    deaths = Deaths()
    detector = Detector(deaths, suspect=0.3)
    try:
        detector.watch({3: (1, f"127.0.0.1:{silent.getsockname()[1]}")})
        assert deaths.event.wait(10)
        time.sleep(0.5)  # a second report would come within a few pings
        assert deaths.seen == [(3, 1)]
    finally:
        detector.stop()
        silent.close()


def test_an_echoing_writer_stays_watched_and_a_closed_one_is_dead() -> None:
    listener = Listener("127.0.0.1")
    deaths = Deaths()
    detector = Detector(deaths, suspect=5.0)
    try:
        detector.watch({0: (0, listener.address)})
        held = detector._watched[0]
        first = held.heard
        assert _until(lambda: held.heard > first + 0.3), "pings echoed for 0.3 s and more"
        assert deaths.seen == []
        listener._server.close()  # no new connections; close the held one from our side
        held.sock.shutdown(socket.SHUT_WR)  # the listener reads EOF and closes: we read EOF
        assert deaths.event.wait(10)
        assert deaths.seen == [(0, 0)]
    finally:
        detector.stop()


def test_without_suspect_a_silent_writer_is_not_reported() -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    deaths = Deaths()
    detector = Detector(deaths)
    try:
        detector.watch({0: (0, f"127.0.0.1:{silent.getsockname()[1]}")})
        time.sleep(0.6)
        assert deaths.seen == []
    finally:
        detector.stop()
        silent.close()


@pytest.mark.parametrize(("hold_off", "reported"), [(60.0, [(0, 0)]), (0.0, [(0, 0), (0, 1)])])
def test_a_silent_successor_is_reported_only_past_the_hold_off(
    hold_off: float, reported: list[tuple[int, int]]
) -> None:
    first = socket.create_server(("127.0.0.1", 0))
    second = socket.create_server(("127.0.0.1", 0))
    deaths = Deaths()
    detector = Detector(deaths, suspect=0.2, hold_off=hold_off)
    try:
        detector.watch({0: (0, f"127.0.0.1:{first.getsockname()[1]}")})
        assert deaths.event.wait(10)
        deaths.event.clear()
        detector.watch({0: (1, f"127.0.0.1:{second.getsockname()[1]}")})  # its new writer
        if len(reported) > 1:
            assert deaths.event.wait(10)
        else:
            time.sleep(1.0)  # five times the suspicion: it would have been reported
            assert 0 in detector._watched, "still watched: its end-of-file still counts"
        assert deaths.seen == reported
    finally:
        detector.stop()
        first.close()
        second.close()
