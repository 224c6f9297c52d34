"""The simulator's invariants, checked after every step and once the run is quiet.

After every step, on the committed events (every committed transaction's, its markers landed
or not; folded as a restore folds them) and the workers:
- money: Σ balances + in flight = Σ deposited − Σ withdrawn, and each partition's flows
  add up to its accounts' balances;
- every transfer (source, target, id) has at most as many credits and reversals as debits,
  and a pending transfer ends at most once per reservation;
- balances, reservations and flows stay within int64; reservations add up (no phantom
  pending amounts); a closed account holds no money and nothing pending; no account holds
  more open transfers on a side than the ledger's cap;
- no snapshot or view record written is over the snapshot limit;
- a command is executed at most once per idempotency window;
- every event names the principal of the command that caused it (for a transfer's legs, the
  command on its source account), and only a deadline's events name none;
- a running worker's state is the fold of its partition's events;
- a reply always answers a command that was sent, and every final reply to one command
  (one id with one content) says the same, refusals by the id memory aside;
- positions only grow, no reply names one uncommitted; standbys follow their writers
  (`eventledger.sim.positions`).

Across moves (`eventledger.sim.ownership`): one owner per slot, decisions only by the
owner, departures and arrivals that match and carry the state, a table published only once
installed; an account's events stay one sequence across partitions (markers take none).

(Over 400 lines: every rule reads the one fold of the events kept here.)

Once quiet: nothing is in flight, every reservation on one side has its counterpart on the
other, every command has a final reply, and every partition has read everything.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from eventledger.sim.ownership import Ownership
from eventledger.sim.positions import PositionCheck
from eventledger.sim.world import World, owner
from ledger.rejections import RejectionCode
from topology.codec.commands import command_fingerprint
from topology.codes import FlowCode, IdCode
from topology.envelopes import Answered, Slot
from topology.flows import wrapped
from topology.moves import RecordKind, decode_forwarded, record_kind
from topology.topics import TopicKind

__all__ = ["Checker", "InvariantError"]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_MEMORY_REFUSALS: Final = frozenset({*IdCode, FlowCode.FORGED_INTERNAL_COMMAND})


class InvariantError(AssertionError):
    """An invariant broke: `rule` names it, the message says how."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message

    def __reduce__(self) -> tuple[type[InvariantError], tuple[str, str]]:
        return InvariantError, (self.rule, self.message)  # crosses process boundaries


_UNSAID: Final = frozenset(
    {"PendingVoided", "PendingCreditReleased", "PendingCreditAwaited", "PendingCreditPaired"}
)
"""What a pending transfer's deadline causes (no one's command): its events name no one."""


def _check_principal(account: str, principal: str | None, event: Any) -> None:
    """`event` of `account` names who sent the command that caused it: the owner of the
    account the command was sent to (a leg's: the transfer's source)."""
    name = type(event).__name__
    if name == "TransferForced" or (principal is None and name in _UNSAID):
        return
    expected = owner(getattr(event, "source", account))
    if principal != expected:
        raise InvariantError(
            "principal", f"{name} on {account!r} names {principal!r}, its command {expected!r}"
        )


@dataclass
class _Transfer:
    debits: int = 0  # TransferDebited / PendingPosted
    landed: int = 0  # TransferCredited / PendingCreditSettled / TransferReversed
    reserved: int = 0  # PendingReserved
    ended: int = 0  # PendingPosted / PendingVoided
    amounts: list[int] = field(default_factory=list)


class Checker:
    """Folds the committed events incrementally and checks the invariants."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.states: dict[str, Slot] = {}
        self.positions: dict[int, int] = {}
        self.deposited = 0
        self.withdrawn = 0
        self.in_flight = 0
        self.transfers: dict[tuple[str, str, str], _Transfer] = defaultdict(_Transfer)
        # (account, command id) → (first attempt, fingerprint) of each decision of it
        self.decided: dict[tuple[str, str], list[tuple[int | None, int]]] = {}
        self.operations = 0  # events committed
        self.decisions = 0  # commands and legs decided in committed batches
        self.refusals: Counter[str] = Counter()  # their refusals, by code
        # (account, transfer id) → how its reservation ended, and that event's sequence
        self.ended: dict[tuple[str, str], tuple[str, int]] = {}
        self.answers: dict[tuple[str, str, int], tuple[bool, str | None, int]] = {}
        self.commit_seqs = PositionCheck()
        self.ownership = Ownership(world)
        self.forwarded = 0  # records forwarded to the owner of their slot

    # -- after every step -----------------------------------------------------------------------

    def step(self) -> None:
        """Fold what was committed since the last step, then check."""
        w = self.world
        self._executions()  # by the owners before this step, as the batch ran
        for p in range(w.count):
            log = w.logs.log(TopicKind.EVENTS, p)
            for record in log.decided(self.positions.get(p, 0)):
                assert record.value is not None
                kind = record_kind(record.headers) if record.headers else None
                if kind is None:
                    self._fold(record.value, p)
                else:
                    self._broke(self.ownership.marker(kind, record.value, p, self.states))
            self.positions[p] = log.decided_end()
        self._broke(self.ownership.scan())
        w.poll_replies()
        broke = self.commit_seqs.step(w, [answered.reply for _, answered in w.decisions])
        if broke is not None:
            raise InvariantError(*broke)
        self._check_money()
        self._check_accounts()
        self._check_replies()
        self._check_workers()

    @staticmethod
    def _broke(broke: tuple[str, str] | None) -> None:
        if broke is not None:
            raise InvariantError(*broke)

    def _fold(self, value: bytes, partition: int) -> None:
        codec = self.world.codec
        envelope, event = codec.events.decode(value)
        account = envelope.aggregate_id
        self._broke(self.ownership.event(account, partition))
        slot = self.states.get(account)
        if (0 if slot is None else slot.version) + 1 != envelope.sequence:
            raise InvariantError(
                "events", f"{account!r}: sequence {envelope.sequence} out of order"
            )
        _check_principal(account, envelope.principal, event)
        state = codec.aggregate.evolve(None if slot is None else slot.state, event)
        self.states[account] = Slot(state, envelope.sequence)
        self.operations += 1
        name = type(event).__name__
        tid: Any = getattr(event, "transfer_id", None)
        if name == "PendingReserved":
            self.ended.pop((account, tid), None)
        elif name in ("PendingVoided", "PendingPosted"):
            self.ended[account, tid] = (getattr(event, "reason", "posted"), envelope.sequence)
        moves = codec.aggregate.moves(event)  # type: ignore[attr-defined]
        for kind, _, amount in moves:
            if kind == "deposited":
                self.deposited += amount
            elif kind == "withdrawn":
                self.withdrawn += amount
            elif kind == "sent":
                self.in_flight += amount
            else:
                self.in_flight -= amount
        self._transfer_leg(account, name, event)

    def _executions(self) -> None:
        """The client commands the last committed batch decided. The memory may forget an
        id only past its window, so a command is decided again only if every earlier
        decision of its id had a first attempt past the window on the partition's clock,
        and the same attempt (first attempt and content) is never decided twice."""
        step, self.world.last_step = self.world.last_step, None  # each step is checked once
        if step is None or not step.committed or step.result is None:
            return
        self.decisions += len(step.result.outcomes)
        outcomes = step.result.outcomes
        self.refusals.update(o.code for o in outcomes if o.outcome == "rejected" and o.code)
        limit = max(w.max_snapshot_bytes for w in self.world.partitions)
        for out in (*step.result.snapshots, *step.result.views):
            if len(out.value or b"") > limit:
                raise InvariantError(
                    "record-size", f"a {out.kind} record of {len(out.value or b''):,} bytes"
                )
        by_offset = {(r.internal, r.offset): r for r in step.records}
        window = self.world.config.window_ms
        for outcome in step.result.outcomes:
            self.forwarded += outcome.outcome == "forwarded"
            if outcome.outcome not in ("accepted", "rejected"):
                continue
            if outcome.aggregate_id is not None and outcome.code not in _MEMORY_REFUSALS:
                self._broke(self.ownership.decided(outcome.aggregate_id, step.partition))
            if outcome.code in _MEMORY_REFUSALS:
                continue
            record = by_offset.get((outcome.internal, outcome.offset))
            if record is None:  # a leg this batch sent itself, or a deadline's
                continue
            value = record.value
            if outcome.internal:  # a leg, or a client command another partition forwarded
                if record_kind(record.headers) is not RecordKind.FORWARDED:
                    continue
                value = decode_forwarded(value or b"").value
            envelope, _ = self.world.codec.commands.decode(value)
            if envelope.command_id != outcome.command_id:
                continue  # a leg the forwarded command sent to this partition itself
            first = envelope.first_attempt_ms
            attempt = (first, command_fingerprint(envelope))
            earlier = self.decided.setdefault((envelope.aggregate_id, envelope.command_id), [])
            for before, fingerprint in earlier:
                if (before, fingerprint) == attempt or (
                    before is not None and before + window >= step.now_ms
                ):
                    raise InvariantError(
                        "exactly-once",
                        f"{envelope.command_id!r} on {envelope.aggregate_id!r} (first attempt "
                        f"{first}) decided again at {step.now_ms}, after a decision of its id "
                        f"first tried at {before}, inside the {window} ms window",
                    )
            earlier.append(attempt)

    def _transfer_leg(self, account: str, name: str, event: Any) -> None:
        tid = getattr(event, "transfer_id", None)
        if tid is None:
            return
        if name in ("TransferDebited", "PendingPosted", "TransferReversed", "PendingReserved"):
            key = (account, event.to, tid)
        elif name in ("TransferCredited", "PendingCreditSettled"):
            key = (event.source, account, tid)
        else:
            return
        t = self.transfers[key]
        if name in ("TransferDebited", "PendingPosted"):
            t.debits += 1
            t.amounts.append(event.amount)
        if name in ("TransferCredited", "PendingCreditSettled", "TransferReversed"):
            t.landed += 1
        if name == "PendingReserved":
            t.reserved += 1
        if name == "PendingPosted":
            t.ended += 1
        if t.landed > t.debits:
            raise InvariantError(
                "transfer", f"{key}: {t.landed} credits or reversals, {t.debits} debits"
            )

    def _check_money(self) -> None:
        total = sum(s.state.balance for s in self.states.values() if s.state is not None)
        if total + self.in_flight != self.deposited - self.withdrawn:
            raise InvariantError(
                "conservation",
                f"Σ balances {total} + in flight {self.in_flight} != deposited "
                f"{self.deposited} − withdrawn {self.withdrawn}",
            )

    def _check_accounts(self) -> None:
        for account, slot in self.states.items():
            s = slot.state
            for name in ("balance", "pending_debits", "pending_credits", "overdraft_limit"):
                value = getattr(s, name)
                if not INT64_MIN <= value <= INT64_MAX:
                    raise InvariantError("int64", f"{account!r}: {name} {value} is outside int64")
            for name, value in _reservations(s).items():
                if getattr(s, name) != value:
                    raise InvariantError(
                        "phantom-pending",
                        f"{account!r}: {name} is {getattr(s, name)} but its open pending "
                        f"transfers add up to {value}",
                    )
            if s.status == "closed" and (s.balance != 0 or _open_pending(s) or s.sending):
                raise InvariantError(
                    "closed-account",
                    f"{account!r} is closed with balance {s.balance} and "
                    f"{len(_open_pending(s))} pending",
                )
            cap = self.world.config.max_open_transfers
            if max(s.open_out, s.open_in) > cap:
                raise InvariantError(
                    "cap", f"{account!r} holds {s.open_out} out, {s.open_in} in; the cap is {cap}"
                )
            if s.balance - s.pending_debits < -s.overdraft_limit:
                raise InvariantError(
                    "overdraft", f"{account!r}: balance {s.balance} is past its overdraft"
                )

    def _check_replies(self) -> None:
        w = self.world
        if w.crossed:
            raise InvariantError("replies", w.crossed[0])
        received, w.decisions = w.decisions, []
        for decision, answered in received:
            reply = answered.reply
            if reply.code in _MEMORY_REFUSALS:
                continue
            if reply.code == RejectionCode.UNKNOWN_PENDING:
                self._check_late_finish(answered)
            said = (reply.accepted, reply.code, reply.version)
            first = self.answers.setdefault(decision, said)
            if said != first:
                raise InvariantError(
                    "replies",
                    f"{decision[1]!r} on {decision[0]!r} (decided for the attempt first tried "
                    f"at {decision[2]}) was answered {first}, then {said}",
                )

    def _check_late_finish(self, answered: Answered) -> None:
        """A post or void of a reservation that expired is told so (`pending_expired`),
        not that the reservation is unknown."""
        reply = answered.reply
        by_content = self.world.sent.get((reply.aggregate_id, reply.command_id), {})
        fingerprint = answered.fingerprint
        attempted = next((a for (fp, _), a in by_content.items() if fp == fingerprint), None)
        if attempted is None:
            return
        tid = getattr(attempted.command, "transfer_id", None)
        if not isinstance(tid, str):
            return
        slot = self.states.get(reply.aggregate_id)
        if slot is None or tid not in slot.state.ended:
            return  # the account names only its last ended reservations (a stated bound)
        how, at = self.ended.get((reply.aggregate_id, tid), ("", 0))
        if how == "expired" and reply.version >= at:  # decided after the expiry
            raise InvariantError(
                "late-finish",
                f"{attempted.command!r} on {reply.aggregate_id!r} after its reservation "
                f"expired was answered unknown_pending, not pending_expired",
            )

    def _check_workers(self) -> None:
        """A running worker's state is the fold of its partition's events; its flows add up."""
        w = self.world
        touched, w.touched = w.touched, set()
        where = self.ownership.location
        for p in sorted(touched):
            worker = w.partitions[p]
            mine = {a: s for a, s in self.states.items() if where.get(a) == p}
            if worker.flows is not None:
                total = wrapped(sum(s.state.balance for s in mine.values()))
                if worker.flows.balance() != total:
                    raise InvariantError(
                        "flows",
                        f"p{p}: flows say {worker.flows.balance()}, balances add up to {total}",
                    )
            if len(worker.states) != len(mine):
                raise InvariantError(
                    "state", f"p{p} holds {len(worker.states)} accounts, its events {len(mine)}"
                )
            for account, slot in mine.items():
                held = worker.states.get(account)
                if held != slot:
                    raise InvariantError(
                        "state", f"p{p}: {account!r} is {held}, the fold of its events {slot}"
                    )

    # -- once quiet -----------------------------------------------------------------------------

    def quiet(self) -> None:
        """The checks that hold once every partition has run out of work."""
        self.step()
        w = self.world
        for worker in w.partitions:
            commands, internal = worker.pending_records()
            if commands or internal:
                raise InvariantError(
                    "blocked",
                    f"p{worker.partition} left {commands} commands and {internal} internal "
                    f"commands unread",
                )
        if self.in_flight:
            stuck = [
                f"{k[2]!r} {k[0]!r}→{k[1]!r}"
                for k, t in sorted(self.transfers.items())
                if t.debits != t.landed
            ]
            raise InvariantError("in-flight", f"{self.in_flight} in flight once quiet: {stuck}")
        self._check_counterparts()
        for by_content in w.sent.values():
            for attempted in by_content.values():
                if not attempted.answered:
                    raise InvariantError(
                        "unanswered",
                        f"{attempted.command_id!r} on {attempted.account!r} "
                        f"({attempted.command!r}) got no final reply",
                    )

    def _check_counterparts(self) -> None:
        """Every open reservation out has its noted credit on the target, and back."""
        outs: set[tuple[str, str, str, int]] = set()
        ins: set[tuple[str, str, str, int]] = set()
        for account, slot in self.states.items():
            for source, target, tid, amount, direction in _pending_entries(account, slot.state):
                (outs if direction == "out" else ins).add((source, target, tid, amount))
        if outs != ins:
            raise InvariantError(
                "phantom-pending",
                f"reservations without a counterpart once quiet: out only "
                f"{sorted(outs - ins)}, in only {sorted(ins - outs)}",
            )


def _open_pending(state: Any) -> list[Any]:
    incoming = state.incoming
    return [*state.pending.values(), *(p for c in incoming.values() for p in c.values())]


def _reservations(state: Any) -> dict[str, int]:
    entries = _open_pending(state)
    return {
        "pending_debits": sum(p.amount for p in entries if p.direction == "out"),
        "pending_credits": sum(p.amount for p in entries if p.direction == "in"),
    }


def _pending_entries(account: str, state: Any) -> list[tuple[str, str, str, int, str]]:
    """(source, target, transfer id, amount, direction) of each open reservation."""
    found = []
    for key, p in state.pending.items():
        if p.direction == "out":
            found.append((account, p.other, key, p.amount, "out"))
        else:
            found.append((p.other, account, key, p.amount, "in"))
    for source, credits in state.incoming.items():
        for tid, p in credits.items():
            found.append((source, account, tid, p.amount, "in"))
    return found
