"""Liveness sockets: how the coordinator learns at once that a member's process died.

A member listens on an ephemeral TCP port (``Listener``, its address published in its stats)
and echoes what a connection sends. The coordinator's ``Detector`` holds one connection to each
partition's writer and waits on them all (``selectors``):
- when the writer's process dies, its kernel closes the connection and the detector reads
  end-of-file: measured 11–13 ms after a ``kill -9`` here, where a pending Ray call on the
  dead actor failed only after 1.0–1.3 s;
- it pings each writer every ``PING_SECONDS``; a writer that echoes nothing for ``suspect``
  seconds (a stopped or wedged process, whose kernel keeps the connection open) counts as
  dead too, once per ``HOLD_OFF_SECONDS`` per partition. Taking over a live writer is safe:
  the takeover fences it.
A connection that cannot be made is no death (the next tick tries again).

Invariant: ``on_death`` is called at most once per connection, and never for a partition
unwatched before its connection ended (a retire the coordinator itself decided).
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["HOLD_OFF_SECONDS", "PING_SECONDS", "Detector", "Listener"]

log = logging.getLogger(__name__)

PING_SECONDS = 0.1
"""How often the detector pings each writer (one byte; the writer echoes it)."""

HOLD_OFF_SECONDS = 30.0
"""After a partition's writer was reported for silence, its next writer is not reported for
silence again this long (end-of-file still is): a slow machine, not a stall, must not turn
into a takeover after every ``suspect`` seconds."""

_SELECT_SECONDS = 0.2
_CONNECT_SECONDS = 1.0


class Listener:
    """A listening socket on ``host`` and an ephemeral port (``address``: "host:port"); a
    daemon thread accepts connections, echoes what they send, and keeps them until their
    peer closes them."""

    def __init__(self, host: str) -> None:
        self._server = socket.create_server(("", 0))
        self.address = f"{host}:{self._server.getsockname()[1]}"
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ)
        threading.Thread(target=self._run, name="liveness", daemon=True).start()

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._server:
                    conn, _ = self._server.accept()
                    conn.setblocking(False)
                    self._selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    ping = sock.recv(64)
                    if ping:
                        sock.send(ping)  # a full buffer drops it: the next ping is echoed
                except BlockingIOError:
                    continue
                except OSError:
                    ping = b""
                if not ping:
                    self._selector.unregister(sock)
                    sock.close()


Watched = tuple[int, str]
"""The member watched and its liveness address."""


@dataclass
class _Held:
    """A watched writer's connection and when it was last pinged and last heard from."""

    watched: Watched
    sock: socket.socket
    heard: float
    pinged: float = 0.0


class Detector:
    """Holds a connection to each watched partition's writer; calls ``on_death(partition,
    member)`` from its own thread when one reads end-of-file or fails, or (``suspect`` > 0)
    has echoed no ping for ``suspect`` seconds, unless that partition was reported for
    silence within ``hold_off`` seconds."""

    def __init__(
        self,
        on_death: Callable[[int, int], None],
        suspect: float = 0.0,
        hold_off: float = HOLD_OFF_SECONDS,
    ) -> None:
        self._on_death = on_death
        self._suspect = suspect
        self._hold_off = hold_off
        self._silenced: dict[int, float] = {}  # partition → when it was last reported silent
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._watched: dict[int, _Held] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detector", daemon=True)
        self._thread.start()

    def watch(self, writers: Mapping[int, Watched]) -> None:
        """Hold a connection to each partition's writer in ``writers`` (partition → member,
        address), connecting to new ones; partitions left out are not unwatched here."""
        for p, wanted in writers.items():
            with self._lock:
                held = self._watched.get(p)
            if held is not None and held.watched == wanted:
                continue
            self.unwatch(p)
            host, port = wanted[1].rsplit(":", 1)
            try:
                sock = socket.create_connection((host, int(port)), timeout=_CONNECT_SECONDS)
            except OSError as e:
                log.info("partition %d member %d: no liveness connection (%s)", p, wanted[0], e)
                continue
            sock.setblocking(False)
            with self._lock:
                self._watched[p] = _Held(wanted, sock, time.monotonic())
                self._selector.register(sock, selectors.EVENT_READ, p)

    def unwatch(self, partition: int) -> None:
        """Stop watching the partition's writer (the coordinator is about to end it)."""
        with self._lock:
            held = self._watched.pop(partition, None)
            if held is not None:
                self._selector.unregister(held.sock)
                held.sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for p in list(self._watched):
            self.unwatch(p)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                empty = not self._watched
            if empty:
                self._stop.wait(_SELECT_SECONDS)
                continue
            for key, _ in self._selector.select(PING_SECONDS if self._suspect else _SELECT_SECONDS):
                self._read(key.data, key.fileobj)
            if self._suspect:
                self._ping()

    def _ping(self) -> None:
        """Ping each writer due; declare dead those silent beyond ``suspect``."""
        now = time.monotonic()
        with self._lock:
            held = list(self._watched.items())
        for p, h in held:
            held_off = now - self._silenced.get(p, -self._hold_off) < self._hold_off
            if now - h.heard > self._suspect and not held_off:
                self._silenced[p] = now
                log.warning(
                    "partition %d: its writer, member %d, echoed no ping for %.0f ms",
                    p,
                    h.watched[0],
                    (now - h.heard) * 1000,
                )
                self._died(p, h)
            elif now - h.pinged >= PING_SECONDS:
                h.pinged = now
                try:
                    h.sock.send(b"?")
                except BlockingIOError:
                    pass  # its buffer is full: it has not read our pings; silence decides
                except OSError:
                    self._died(p, h)

    def _read(self, partition: int, sock: object) -> None:
        assert isinstance(sock, socket.socket)
        try:
            ended = not sock.recv(64)
        except BlockingIOError:
            return
        except OSError:
            ended = True
        with self._lock:
            held = self._watched.get(partition)
            if held is None or held.sock is not sock:
                return  # unwatched meanwhile
            held.heard = time.monotonic()
        if ended:
            log.warning("partition %d: its writer, member %d, has died", partition, held.watched[0])
            self._died(partition, held)

    def _died(self, partition: int, held: _Held) -> None:
        """Unwatch the partition (once per connection) and report its writer dead."""
        with self._lock:
            if self._watched.get(partition) is not held:
                return
            del self._watched[partition]
            self._selector.unregister(held.sock)
            held.sock.close()
        try:
            self._on_death(partition, held.watched[0])
        except Exception:
            log.exception("partition %d: the takeover failed", partition)
