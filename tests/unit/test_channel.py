"""What the request/reply channel reads from a reply record (``actors.channel.answer_of``,
and the raw echo's ``bench.peers.echo_answer``): the reply, nothing for a saga's in-flight
marker; the echo's own command bytes as an accepted reply to that command."""

from __future__ import annotations

from actors.channel import answer_of
from bench.peers import echo_answer
from ledger.commands import Deposit
from topology.codec import Reply, encode_command, encode_reply
from topology.step import IN_FLIGHT


def _reply(code: str | None) -> Reply:
    return Reply(
        command_id="c-1",
        aggregate_id="alice",
        accepted=code is None,
        code=code,
        message="",
        version=3,
    )


def test_a_reply_record_is_its_reply() -> None:
    for reply in (_reply(None), _reply("insufficient_funds")):
        assert answer_of(encode_reply(reply)) == reply


def test_a_sagas_in_flight_marker_answers_nothing() -> None:
    assert answer_of(encode_reply(_reply(IN_FLIGHT))) is None


def test_the_echo_answers_a_command_with_its_own_ids() -> None:
    value = encode_command("alice", Deposit(5), command_id="c-9", reply_to=0)
    answer = echo_answer(value)
    assert (answer.command_id, answer.aggregate_id, answer.accepted) == ("c-9", "alice", True)
