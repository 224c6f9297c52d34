"""The codec boundary: round trips, poison classification, upcasting, snapshots, views."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from ledger import (
    LEDGER,
    Account,
    AccountView,
    Deposit,
    Deposited,
    OpenAccount,
    Pending,
    Withdraw,
    Withdrawn,
)
from ledger.internal import CreditTransfer
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint, encode_checkpoint
from topology.codec.commands import (
    CommandDecodeError,
    command_fingerprint,
    encode_command,
    readdressed,
)
from topology.codec.keys import decode_key, encode_id_key, encode_key
from topology.codec.replies import (
    decode_answer,
    decode_entry,
    decode_reply_record,
    encode_entry,
    encode_reply,
)
from topology.codec.snapshots import StaleSnapshotError
from topology.codec.wire import CodecError
from topology.codes import PoisonCode
from topology.envelopes import (
    Answered,
    Checkpoint,
    CommandEnvelope,
    Deferred,
    EventEnvelope,
    Origin,
    Position,
    Reply,
    Slot,
    Snapshot,
)
from topology.flows import Flows, wrapped
from topology.limits import MAX_COMMAND_BYTES, MAX_ID_CHARS

from .support import LEDGER_CODEC


def envelope_bytes(type_: str, payload: object, **fields: Any) -> bytes:
    """A hand-made command envelope, as a foreign or buggy client might send."""
    envelope = CommandEnvelope(
        command_id=fields.pop("command_id", "c-1"),
        aggregate_id=fields.pop("aggregate_id", "acct-1"),
        type=type_,
        payload=msgspec.Raw(msgspec.msgpack.encode(payload)),
        **fields,
    )
    return msgspec.msgpack.encode(envelope)


# --- keys ----------------------------------------------------------------------------------


def test_keys_are_utf8() -> None:
    assert encode_key("kontō-7") == "kontō-7".encode()
    assert decode_key(encode_key("kontō-7")) == "kontō-7"


def test_a_key_that_is_not_utf8_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_key(b"\xff\xfe")


# --- commands ------------------------------------------------------------------------------


def test_command_round_trip() -> None:
    data = encode_command(
        "acct-1", OpenAccount("EUR", 50), command_id="c-1", expected_version=0, reply_to=3
    )
    envelope, command = LEDGER_CODEC.commands.decode(data)
    assert command == OpenAccount("EUR", 50)
    assert (envelope.command_id, envelope.aggregate_id, envelope.type) == (
        "c-1",
        "acct-1",
        "OpenAccount",
    )
    assert (envelope.expected_version, envelope.reply_to) == (0, 3)


def test_command_defaults_are_none() -> None:
    envelope, _ = LEDGER_CODEC.commands.decode(encode_command("a", Deposit(1), command_id="c"))
    assert envelope.expected_version is None
    assert envelope.reply_to is None


@pytest.mark.parametrize(
    ("aggregate_id", "command_id"),
    [("", "c"), ("a", ""), ("a" * (MAX_ID_CHARS + 1), "c"), ("a", "c" * (MAX_ID_CHARS + 1))],
)
def test_encode_command_refuses_ids_out_of_bounds(aggregate_id: str, command_id: str) -> None:
    with pytest.raises(ValueError, match=f"1 to {MAX_ID_CHARS} characters"):
        encode_command(aggregate_id, Deposit(1), command_id=command_id)


def test_ids_at_the_limit_round_trip() -> None:
    data = encode_command("a" * MAX_ID_CHARS, Deposit(1), command_id="c" * MAX_ID_CHARS)
    envelope, _ = LEDGER_CODEC.commands.decode(data)
    assert len(envelope.aggregate_id) == len(envelope.command_id) == MAX_ID_CHARS


def test_encode_command_refuses_an_oversized_command() -> None:
    with pytest.raises(ValueError, match="limit"):
        encode_command("a", OpenAccount("x" * MAX_COMMAND_BYTES), command_id="c")


def test_decoding_refuses_ids_past_the_limit_and_oversized_records() -> None:
    long_id = CommandEnvelope("c" * (MAX_ID_CHARS + 1), "a", "Deposit", msgspec.Raw(b"\x80"))
    with pytest.raises(CommandDecodeError) as caught:
        LEDGER_CODEC.commands.decode(msgspec.msgpack.encode(long_id))
    assert (caught.value.code, caught.value.envelope) == (PoisonCode.MALFORMED, None)
    with pytest.raises(CommandDecodeError) as caught:
        LEDGER_CODEC.commands.decode(b"\x00" * (MAX_COMMAND_BYTES + 1))
    assert caught.value.code == PoisonCode.TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"\xc1garbage",
        msgspec.msgpack.encode({"hello": "world"}),
        msgspec.msgpack.encode([1, 2, 3]),
        envelope_bytes("Deposit", {"amount": 1}, command_id=""),
        envelope_bytes("Deposit", {"amount": 1}, reply_to=-1),
        envelope_bytes("Deposit", {"amount": 1}, expected_version=-1),
    ],
)
def test_unreadable_envelopes_are_malformed(data: bytes | None) -> None:
    with pytest.raises(CommandDecodeError) as caught:
        LEDGER_CODEC.commands.decode(data)
    assert caught.value.code == PoisonCode.MALFORMED
    assert caught.value.envelope is None
    assert caught.value.message


def test_unknown_command_type_keeps_the_envelope() -> None:
    with pytest.raises(CommandDecodeError) as caught:
        LEDGER_CODEC.commands.decode(envelope_bytes("Teleport", {"amount": 1}, reply_to=2))
    assert caught.value.code == PoisonCode.UNKNOWN_COMMAND_TYPE
    assert caught.value.envelope is not None
    assert caught.value.envelope.reply_to == 2
    assert "Teleport" in caught.value.message


@pytest.mark.parametrize(
    "payload",
    [
        {"amount": "ten"},
        {"amount": 1.5},
        {"amount": True},
        {},
        {"amount": 1, "surprise": 2},
        {"type": "Withdraw", "amount": 1},
        "not a map",
    ],
)
def test_bad_payloads_are_invalid(payload: object) -> None:
    with pytest.raises(CommandDecodeError) as caught:
        LEDGER_CODEC.commands.decode(envelope_bytes("Deposit", payload))
    assert caught.value.code == PoisonCode.INVALID_PAYLOAD
    assert caught.value.envelope is not None
    assert caught.value.envelope.command_id == "c-1"


def test_a_payload_without_its_tag_is_accepted() -> None:
    _, command = LEDGER_CODEC.commands.decode(envelope_bytes("Withdraw", {"amount": 4}))
    assert command == Withdraw(4)


def test_non_struct_commands_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="tagged"):
        encode_command("a", msgspec.Struct(), command_id="c")


# --- replies -------------------------------------------------------------------------------


ACCEPTED = Reply.accept(
    command_id="c-1", aggregate_id="acct-1", version=3, position=Position(2, 41)
)
REFUSED = Reply.refuse(
    command_id="c-2",
    aggregate_id="acct-1",
    code="insufficient_funds",
    message="cannot withdraw 5: 4 available",
    version=3,
    position=Position(0, 2**40),
)
UNPOSITIONED = Reply("c-3", "acct-1", True, None, "", 3)  # made before there were positions


@pytest.mark.parametrize("reply", [ACCEPTED, REFUSED, UNPOSITIONED])
def test_an_unremembered_reply_round_trips_and_is_its_own_answer(reply: Reply) -> None:
    data = encode_reply(reply)
    assert decode_reply_record(data) == reply
    assert decode_answer(data) == reply
    with pytest.raises(CodecError, match="not an id memory entry"):
        decode_entry(data)  # the id memory never holds an unremembered reply


@pytest.mark.parametrize("reply", [ACCEPTED, REFUSED, UNPOSITIONED])
def test_an_answered_entry_round_trips_and_answers_with_its_reply(reply: Reply) -> None:
    entry = Answered(reply, first_attempt_ms=1_700_000_000_000, fingerprint=2**62 + 1)
    data = encode_entry(entry)
    assert decode_entry(data) == decode_reply_record(data) == entry
    assert decode_answer(data) == reply


def test_a_reply_is_its_old_array_with_the_position_last() -> None:
    before = ["reply", "c-1", "acct-1", True, None, "", 3]
    assert msgspec.msgpack.decode(encode_reply(ACCEPTED)) == [*before, [2, 41]]
    assert msgspec.msgpack.decode(encode_reply(UNPOSITIONED))[:7] == ["reply", "c-3", *before[2:]]


def test_replies_and_entries_written_before_positions_still_decode() -> None:
    old_reply = msgspec.msgpack.encode(["reply", "c-1", "acct-1", True, None, "", 3])
    expected = Reply("c-1", "acct-1", True, None, "", 3)
    assert decode_reply_record(old_reply) == decode_answer(old_reply) == expected
    assert expected.position is None
    old_refusal = ["reply", "c-2", "acct-1", False, "insufficient_funds", "no", 3]
    old_entry = msgspec.msgpack.encode(["answered", old_refusal, 1_700_000_000_000, 9])
    entry = decode_entry(old_entry)
    assert isinstance(entry, Answered) and entry.reply.position is None
    assert decode_answer(old_entry) == Reply("c-2", "acct-1", False, "insufficient_funds", "no", 3)


@pytest.mark.parametrize("text", ["3:1842", "0:0"])
def test_a_position_reads_back_from_its_text(text: str) -> None:
    assert str(Position.parse(text)) == text


@pytest.mark.parametrize("text", ["", "3", "3:", ":4", "a:1", "1:-2", "1:2:3", " 1:2"])
def test_a_position_of_another_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="<partition>:<seq>"):
        Position.parse(text)


def test_an_in_flight_entry_round_trips_and_answers_nothing() -> None:
    entry = Deferred(1_700_000_000_000, 7, [("acct-2", b"\x81\xa1k\x01")])
    data = encode_entry(entry)
    assert decode_entry(data) == decode_reply_record(data) == entry
    assert decode_answer(data) is None
    assert decode_entry(encode_entry(Deferred(1, 2))).resend == []


def test_reply_garbage_is_a_codec_error() -> None:
    for decode in (decode_reply_record, decode_answer, decode_entry):
        with pytest.raises(CodecError):
            decode(b"\x93\x01\x02")


# --- events --------------------------------------------------------------------------------


def test_event_round_trip() -> None:
    data = LEDGER_CODEC.events.encode(
        "acct-1", 7, Deposited(30), command_id="c-9", timestamp_ms=1234
    )
    envelope, event = LEDGER_CODEC.events.decode(data)
    assert event == Deposited(30)
    assert envelope == EventEnvelope(
        aggregate_id="acct-1",
        sequence=7,
        type="Deposited",
        schema_version=LEDGER.event_schema_version,
        payload=envelope.payload,
        command_id="c-9",
        timestamp_ms=1234,
    )


def test_event_envelopes_are_self_describing_maps() -> None:
    data = LEDGER_CODEC.events.encode("acct-1", 1, Withdrawn(2), command_id="c", timestamp_ms=0)
    decoded = msgspec.msgpack.decode(data)
    assert decoded["type"] == "Withdrawn"
    assert decoded["payload"] == {"type": "Withdrawn", "amount": 2}  # nested, not opaque bytes


def test_foreign_events_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="not an event"):
        LEDGER_CODEC.events.encode("a", 1, Deposit(1), command_id="c", timestamp_ms=0)


@pytest.mark.parametrize("data", [b"", b"\xc1", msgspec.msgpack.encode({"sequence": 1})])
def test_event_garbage_is_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        LEDGER_CODEC.events.decode(data)


# A test-only aggregate whose "Added" event changed layout twice:
# v1 {n}, v2 {amount} (renamed), v3 {amount, note} (new field).


class AddedV1(msgspec.Struct, frozen=True, tag="Added"):
    n: int


class AddedV3(msgspec.Struct, frozen=True, tag="Added"):
    amount: int
    note: str


class Reset(msgspec.Struct, frozen=True, tag="Reset"):
    pass


def _rename(payload: dict[str, Any]) -> dict[str, Any]:
    payload["amount"] = payload.pop("n")
    return payload


def _annotate(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "note": f"migrated {payload['amount']}"}


@dataclass(frozen=True)
class Counter:
    """Just enough of an aggregate to exercise the codec's version handling."""

    event_type: Any
    event_schema_version: int
    upcasters: Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = field(
        default_factory=dict
    )
    name: str = "counter"
    command_type: Any = Deposit
    state_type: Any = int
    view_type: Any = int
    state_schema_version: int = 1

    def decide(self, state: Any, command: Any) -> Any:
        raise AssertionError("the codec never decides")

    def evolve(self, state: Any, event: Any) -> Any:
        return state

    def view(self, state: Any, version: int) -> Any:
        return state


COUNTER_V1 = Counter(AddedV1 | Reset, 1)
COUNTER_V3 = Counter(AddedV3 | Reset, 3, upcasters={("Added", 1): _rename, ("Added", 2): _annotate})


def test_old_events_are_upcast_through_the_chain() -> None:
    old = Codec(COUNTER_V1).events.encode("k", 1, AddedV1(5), command_id="c", timestamp_ms=0)
    envelope, event = Codec(COUNTER_V3).events.decode(old)
    assert event == AddedV3(5, "migrated 5")
    assert envelope.schema_version == 1  # the envelope is reported as stored


def test_a_type_without_upcasters_is_unchanged_between_versions() -> None:
    old = Codec(COUNTER_V1).events.encode("k", 2, Reset(), command_id="c", timestamp_ms=0)
    assert Codec(COUNTER_V3).events.decode(old)[1] == Reset()


def test_current_events_skip_the_upcasters() -> None:
    new = Codec(COUNTER_V3).events.encode("k", 1, AddedV3(1, "x"), command_id="c", timestamp_ms=0)
    assert Codec(COUNTER_V3).events.decode(new)[1] == AddedV3(1, "x")


def test_events_from_a_newer_schema_are_refused() -> None:
    new = Codec(COUNTER_V3).events.encode("k", 1, AddedV3(1, "x"), command_id="c", timestamp_ms=0)
    with pytest.raises(CodecError, match="newer"):
        Codec(COUNTER_V1).events.decode(new)


def test_an_upcast_payload_that_does_not_fit_is_a_codec_error() -> None:
    broken = Counter(AddedV3 | Reset, 3, upcasters={("Added", 1): _rename})
    old = Codec(COUNTER_V1).events.encode("k", 1, AddedV1(5), command_id="c", timestamp_ms=0)
    with pytest.raises(CodecError, match="schema version 1"):
        Codec(broken).events.decode(old)


def test_unknown_event_types_are_refused() -> None:
    data = Codec(COUNTER_V1).events.encode("k", 1, AddedV1(5), command_id="c", timestamp_ms=0)
    with pytest.raises(CodecError, match="unknown event type"):
        LEDGER_CODEC.events.decode(data)


# --- snapshots -----------------------------------------------------------------------------


SCHEMA = LEDGER.state_schema_version
HEADER_SCHEMA = SCHEMA.to_bytes(2, "big")  # the header's state schema version


def snapshot(state: Account | None = None, schema_version: int = SCHEMA) -> Snapshot:
    slot = Slot(state, 0 if state is None else 2)
    return Snapshot(schema_version, "acct-1", slot, events_offset=41)


def test_small_snapshot_round_trip_is_plain_msgpack_behind_the_header() -> None:
    original = snapshot(Account("open", "EUR", 150, 20))
    data = LEDGER_CODEC.snapshots.encode(original)
    assert data[:3] == b"\x03" + HEADER_SCHEMA  # plain msgpack, the state schema version
    assert LEDGER_CODEC.snapshots.is_current(data)
    restored = LEDGER_CODEC.snapshots.decode(data)
    assert restored == original
    assert type(restored.slot.state) is Account


def test_a_snapshot_keeps_credits_per_source_and_transfers_in_flight() -> None:
    state = Account(
        "open",
        "EUR",
        60,
        0,
        pending_credits=65,
        incoming={
            "a": {"inv-1": Pending("in", "a", 40, None, 3)},
            "c": {"inv-1": Pending("in", "c", 25, None, 5)},
        },
        sending={"t9": Pending("out", "b", 40, None, 7)},
    )
    restored = LEDGER_CODEC.snapshots.decode(LEDGER_CODEC.snapshots.encode(snapshot(state)))
    assert restored.slot.state == state
    assert restored.slot.state.sending["t9"].seq == 7


def test_large_compressible_snapshot_is_lz4_and_round_trips() -> None:
    name = "acct-" + "x" * 2000
    original = Snapshot(SCHEMA, name, Slot(Account("open", "EUR", 0, 0), 1), 7)
    data = LEDGER_CODEC.snapshots.encode(original)
    assert data[:3] == b"\x04" + HEADER_SCHEMA
    assert LEDGER_CODEC.snapshots.is_current(data)
    assert len(data) < len(name) // 2
    assert LEDGER_CODEC.snapshots.decode(data) == original


@pytest.mark.parametrize("header", [b"\x00", b"\x01", b"\x02", b"\x05", b"\xff"])
def test_a_snapshot_of_another_layout_is_refused_naming_the_expected_one(header: bytes) -> None:
    other = header + HEADER_SCHEMA + msgspec.msgpack.encode(("acct-1", (None, 0), 0))
    assert not LEDGER_CODEC.snapshots.is_current(other)
    with pytest.raises(CodecError, match=r"expected 03 \(msgpack\) or 04 \(lz4\)") as caught:
        LEDGER_CODEC.snapshots.decode(other)
    assert not isinstance(caught.value, StaleSnapshotError)  # garbage, not another schema


def test_snapshot_of_an_absent_aggregate() -> None:
    assert LEDGER_CODEC.snapshots.decode(LEDGER_CODEC.snapshots.encode(snapshot())) == snapshot()


def test_snapshots_of_another_state_schema_are_stale() -> None:
    other = SCHEMA + 1
    data = Codec(Counter(Reset, 1, state_schema_version=other)).snapshots.encode(
        snapshot(schema_version=other)
    )
    with pytest.raises(StaleSnapshotError, match=f"schema version {other}"):
        LEDGER_CODEC.snapshots.decode(data)


def test_encoding_a_mislabelled_snapshot_is_refused() -> None:
    with pytest.raises(ValueError, match="schema version"):
        LEDGER_CODEC.snapshots.encode(snapshot(schema_version=9))


def test_snapshot_garbage_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        LEDGER_CODEC.snapshots.decode(b"definitely not lz4")


def test_snapshot_with_a_state_that_does_not_fit_is_a_codec_error() -> None:
    data = LEDGER_CODEC.snapshots.encode(Snapshot(SCHEMA, "acct-1", Slot({"balance": "x"}, 1), 0))
    with pytest.raises(CodecError, match="not a valid account snapshot"):
        LEDGER_CODEC.snapshots.decode(data)


# --- views and dead-letter headers ---------------------------------------------------------


def test_view_round_trip_without_the_account_id() -> None:
    data = LEDGER_CODEC.views.encode(Account("open", "EUR", 5, 0), 2)
    assert LEDGER_CODEC.views.decode(data) == AccountView("open", "EUR", 5, 0, 2, available=5)
    assert msgspec.msgpack.decode(data) == {
        "status": "open",
        "currency": "EUR",
        "balance": 5,
        "overdraft_limit": 0,
        "version": 2,
        "pending_debits": 0,
        "pending_credits": 0,
        "available": 5,
        "in_flight": [],
    }


def test_view_garbage_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        LEDGER_CODEC.views.decode(msgspec.msgpack.encode({"status": 1}))


def test_a_leg_sent_again_is_marked_resent_and_answers_the_retrys_lane() -> None:
    origin = Origin("t1", "a", 1, 5, 42, 3)
    for before in (origin, None):
        value = LEDGER_CODEC.commands.encode_internal(
            "b",
            CreditTransfer("t1", "a", 60, "EUR", 3),
            command_id="credit:3:1:a:t1",
            origin=before,
            first_attempt_ms=5,
        )
        assert not msgspec.msgpack.decode(value, type=CommandEnvelope).resent
        again = msgspec.msgpack.decode(readdressed(value, 0), type=CommandEnvelope)
        assert again.resent
        assert (
            again.command_id == "credit:3:1:a:t1"
            and again.payload == msgspec.msgpack.decode(value, type=CommandEnvelope).payload
        )
        expected = None if before is None else msgspec.structs.replace(before, reply_to=0)
        assert again.origin == expected


def test_flow_totals_wrap_modulo_2_64_within_int64() -> None:
    top = 2**63 - 1
    assert wrapped(top) == top and wrapped(top + 1) == -(2**63) and wrapped(-1) == -1
    assert wrapped(2**64 + 5) == 5
    flows = Flows(deposited=wrapped(3 * top), withdrawn=wrapped(2 * top))
    assert flows.balance() == top, "deposited - withdrawn, modulo 2^64"
    checkpoint = Checkpoint(1, 2, flows=flows)
    assert decode_checkpoint(encode_checkpoint(checkpoint)) == checkpoint, "it always encodes"


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip_and_key() -> None:
    assert CHECKPOINT_KEY == b""  # no aggregate id is empty, so it cannot collide
    flows = Flows(5, 1, {1: 3}, {0: 2}, {1: 1})
    for checkpoint in (
        Checkpoint(0, 0),
        Checkpoint(2**40 + 7, 1_700_000_000_123),
        Checkpoint(3, 4, {1: (b"k", 9)}, internal_offset=12, flows=flows),
        Checkpoint(3, 4, lost=frozenset({b"x"}), seq=2**40 + 1),
    ):
        assert decode_checkpoint(encode_checkpoint(checkpoint)) == checkpoint


def test_a_checkpoint_carries_its_id_memory_marks() -> None:
    marks = {0: (b"\x92\xa1a\xa1c", 1_700_000_000_000), 3: (b"k" * 300, 5)}
    checkpoint = Checkpoint(7, 9, marks)
    assert decode_checkpoint(encode_checkpoint(checkpoint)) == checkpoint
    assert decode_checkpoint(encode_checkpoint(Checkpoint(7, 9))).remembered == {}


def test_a_checkpoint_is_its_format_byte_four_numbers_then_msgpack() -> None:
    data = encode_checkpoint(Checkpoint(1, 2, internal_offset=3, seq=4))
    assert data[:33] == b"\x06" + b"".join(n.to_bytes(8, "big") for n in (1, 2, 3, 4))
    assert msgspec.msgpack.decode(data[33:]) == [[], None, []]


def test_a_checkpoint_written_before_the_commit_sequence_decodes_at_seq_0() -> None:
    marks = [(1, b"k", 9)]
    old = (
        b"\x05"
        + b"".join(n.to_bytes(8, "big") for n in (5, 6, 7))
        + msgspec.msgpack.encode((marks, None, [b"lost"]))
    )
    assert decode_checkpoint(old) == Checkpoint(
        5, 6, {1: (b"k", 9)}, internal_offset=7, lost=frozenset({b"lost"}), seq=0
    )


HEAD = b"\x06" + bytes(32)
OLD_HEAD = b"\x05" + bytes(24)


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"\x02\x00",
        b"\x00" + bytes(8),
        b"\x02" + (42).to_bytes(8, "big"),  # layouts of earlier builds: refused, never misread
        b"\x02" + bytes(16),
        b"\x02" + bytes(16) + msgspec.msgpack.encode([(0, b"k", 1)]),
        HEAD,
        HEAD + msgspec.msgpack.encode(([], None)),
        HEAD + msgspec.msgpack.encode(([], None, [], 4)),
        HEAD + msgspec.msgpack.encode(([(0, "k", 1)], None, [])),
        HEAD + b"\xc1",
        OLD_HEAD,
        OLD_HEAD + msgspec.msgpack.encode(([], None)),
        b"\x07" + bytes(32) + msgspec.msgpack.encode(([], None, [])),
    ],
)
def test_a_checkpoint_of_another_layout_is_refused_naming_the_expected_one(
    data: bytes | None,
) -> None:
    with pytest.raises(CodecError, match=r"not a checkpoint: .*; expected format byte 06"):
        decode_checkpoint(data)


@pytest.mark.parametrize(
    "checkpoint", [Checkpoint(-1, 0), Checkpoint(0, -1), Checkpoint(0, 0, seq=-1)]
)
def test_a_checkpoint_is_not_negative(checkpoint: Checkpoint) -> None:
    with pytest.raises(ValueError):
        encode_checkpoint(checkpoint)


# --- idempotency keys and fingerprints -------------------------------------------------------


def test_id_keys_are_scoped_to_the_aggregate_and_unambiguous() -> None:
    assert encode_id_key("a", "bc") != encode_id_key("ab", "c")
    assert encode_id_key("a", "x") != encode_id_key("b", "x")
    assert encode_id_key("a", "x") == encode_id_key("a", "x")


def test_fingerprints_differ_by_type_payload_and_expected_version() -> None:
    def fingerprint(command: msgspec.Struct, expected: int | None = None) -> int:
        data = encode_command("a", command, command_id="c", expected_version=expected)
        return command_fingerprint(LEDGER_CODEC.commands.decode(data)[0])

    prints = {
        fingerprint(Deposit(5)),
        fingerprint(Deposit(6)),
        fingerprint(Withdraw(5)),
        fingerprint(Deposit(5), expected=3),
    }
    assert len(prints) == 4
    assert 0 not in prints
    assert fingerprint(Deposit(5)) == fingerprint(Deposit(5))


@pytest.mark.parametrize("where", ["payload", "envelope"])
def test_deep_nesting_is_poison_not_a_crash(where: str) -> None:
    deep = b"\x91" * 20_000 + b"\x00"  # [[[...[0]...]]], 20,000 levels in 20 KB
    enc = msgspec.msgpack.encode
    if where == "payload":
        data = enc(CommandEnvelope("c", "a", "Deposit", msgspec.Raw(deep)))
    else:  # the same nesting in an unknown envelope field
        fields = {"command_id": "c", "aggregate_id": "a", "type": "Deposit"}
        data = (
            b"\x85"
            + b"".join(enc(k) + enc(v) for k, v in fields.items())
            + enc("payload")
            + enc({"amount": 5})
            + enc("junk")
            + deep
        )
    with pytest.raises(CommandDecodeError):
        LEDGER_CODEC.commands.decode(data)
