"""What the raw echo's channel reads from a reply record (``bench.peers.echo_answer``): the
echo's own command bytes as an accepted reply to that command. (The service's records are
read by ``topology.codec.replies.decode_answer``, tested in test_codec.)"""

from __future__ import annotations

from bench.peers import echo_answer
from ledger.commands import Deposit
from topology.codec.commands import encode_command


def test_the_echo_answers_a_command_with_its_own_ids() -> None:
    value = encode_command("alice", Deposit(5), command_id="c-9", reply_to=0)
    answer = echo_answer(value)
    assert (answer.command_id, answer.aggregate_id, answer.accepted) == ("c-9", "alice", True)
