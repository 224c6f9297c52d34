"""The trace context of a request: a well-formed W3C traceparent is the parent of the
command's trace; anything else is ignored (a new trace), never an error, never logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from starlette.datastructures import Headers

from eventledger.http.app import api
from eventledger.http.auth import TokenTable
from eventledger.http.replica import Replica, bind_replica
from eventledger.http.tracing import MAX_TRACESTATE, parent_context
from topology.envelopes import Position, Reply

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def _headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(k.encode(), v.encode()) for k, v in pairs])


def _parent(*pairs: tuple[str, str]) -> trace.SpanContext:
    return trace.get_current_span(parent_context(_headers(*pairs))).get_span_context()


def test_a_well_formed_traceparent_is_the_parent() -> None:
    parent = _parent(("traceparent", VALID), ("tracestate", "vendor=abc"))
    assert parent.is_valid and parent.is_remote
    assert (parent.trace_id, parent.span_id) == (int(TRACE, 16), int(SPAN, 16))
    assert parent.trace_flags.sampled and parent.trace_state.get("vendor") == "abc"


@pytest.mark.parametrize(
    "value",
    [
        VALID.upper(),
        f"01-{TRACE}-{SPAN}-01",  # another version
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",  # all zeros
        f"00-{TRACE}-{'0' * 16}-01",
        f"{VALID}-extra",
        f" {VALID}",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN[:-1]}g-01",
        "\u202e" + VALID,
        "x" * 10_000,
        "",
    ],
)
def test_anything_else_is_ignored_and_not_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="eventledger.http.tracing"):
        assert not _parent(("traceparent", value), ("tracestate", "vendor=abc")).is_valid
    assert value not in caplog.text or not value


def test_two_traceparents_are_ignored() -> None:
    other = f"00-{'1' * 32}-{SPAN}-01"
    assert not _parent(("traceparent", VALID), ("traceparent", other)).is_valid


def test_a_tracestate_beyond_the_bound_is_dropped_and_baggage_never_read() -> None:
    long = ",".join(f"k{n}=" + "v" * 20 for n in range(30))
    assert len(long) > MAX_TRACESTATE
    kept = _parent(("traceparent", VALID), ("tracestate", long))
    assert kept.is_valid and len(kept.trace_state) == 0
    context = parent_context(_headers(("traceparent", VALID), ("baggage", "role=admin")))
    assert baggage.get_all(context) == {}


class _Recorder:
    """Records the trace context a command is sent in."""

    def __init__(self) -> None:
        self.parents: list[trace.SpanContext] = []
        self.baggage: list[object] = []

    def new_command_id(self) -> str:
        return "generated"

    async def execute_async(self, account: str, command: Any, **kw: Any) -> Reply:
        self.parents.append(trace.get_current_span().get_span_context())
        self.baggage.append(baggage.get_all(otel_context.get_current()))
        return Reply.accept(
            command_id=kw["command_id"], aggregate_id=account, version=1, position=Position(0, 1)
        )


@pytest.fixture
def recorded() -> Iterator[tuple[TestClient, _Recorder]]:
    client = _Recorder()
    bind_replica(Replica(client, TokenTable(insecure=True), 1.0, list))  # type: ignore[arg-type]
    yield TestClient(api), client


def test_a_command_runs_in_the_callers_trace_or_a_new_one(
    recorded: tuple[TestClient, _Recorder],
) -> None:
    http, client = recorded
    for traceparent in (VALID, VALID.upper()):
        answer = http.post(
            "/accounts/a/close",
            headers={"traceparent": traceparent, "baggage": "role=admin"},
        )
        assert answer.status_code == 200
    assert client.parents[0].trace_id == int(TRACE, 16)
    assert not client.parents[1].is_valid  # malformed: a new trace, and no error
    assert client.baggage == [{}, {}]
