"""The transfer rules as given / when / then, and a property: money is conserved over any
sequence of transfers, posts, voids and expiries, and the fold of the events is the state."""

from collections import defaultdict, deque
from functools import reduce

from hypothesis import given as for_all
from hypothesis import strategies as st

from ledger import (
    MAX_MINOR_UNITS,
    Account,
    AccountClosed,
    AccountOpened,
    CloseAccount,
    Context,
    Decision,
    Deposit,
    Deposited,
    Event,
    Money,
    Pending,
    PendingCreditNoted,
    PendingCreditReleased,
    PendingCreditSettled,
    PendingPosted,
    PendingReserved,
    PendingVoided,
    PostPending,
    RejectionCode,
    Send,
    Transfer,
    TransferCredited,
    TransferDebited,
    TransferReversed,
    VoidPending,
    decide,
    due,
    evolve,
    leg_id,
    moves,
)
from ledger.events import PendingCreditAwaited, TransferCompleted
from ledger.internal import (
    ConfirmCredit,
    CreditTransfer,
    ExpirePending,
    NotePendingCredit,
    RefundTransfer,
    ReleasePendingCredit,
    SettlePendingCredit,
    VoidRefusedPending,
)

NOW = 1_000_000


def given(*events: Event) -> Account | None:
    return reduce(evolve, events, None)


FUNDED = given(AccountOpened("EUR", 0), Deposited(100))
SEQ = 3  # FUNDED holds 2 events: its next event (a transfer's debit) has sequence 3


def refused(decision: Decision) -> str | None:
    """Then: the code `decision` refuses with (None: accepted)."""
    return None if decision.rejection is None else decision.rejection.code


def at(account: str, command_id: str = "t1", now_ms: int = NOW, version: int = 2) -> Context:
    return Context(command_id, account, now_ms, version)


def test_a_transfer_debits_and_sends_the_credit_deferring_the_reply() -> None:
    decision = decide(FUNDED, Transfer("b", 60), at("a"))
    assert decision == Decision(
        [TransferDebited("t1", "b", 60, SEQ, NOW)],
        [Send("b", CreditTransfer("t1", "a", 60, "EUR", SEQ), "credit:3:1:a:t1")],
        final=False,
    )
    assert refused(decision) is None
    sent = reduce(evolve, decision.events, FUNDED)
    assert sent.balance == 40
    assert sent.sending == {"t1": Pending("out", "b", 60, None, SEQ, since_ms=NOW)}


def test_a_transfer_is_named_by_the_sequence_of_its_debit() -> None:
    later = decide(FUNDED, Transfer("b", 60), at("a", version=7))
    assert refused(later) is None
    assert later.events == [TransferDebited("t1", "b", 60, 8, NOW)]
    assert later.sends[0].command_id == leg_id("credit", "a", "t1", 8)


def test_a_transfer_needs_funds_a_positive_amount_and_another_account() -> None:
    funds = decide(FUNDED, Transfer("b", 101), at("a"))
    assert refused(funds) == RejectionCode.INSUFFICIENT_FUNDS
    amount = decide(FUNDED, Transfer("b", 0), at("a"))
    assert refused(amount) == RejectionCode.AMOUNT_NOT_POSITIVE
    same = decide(FUNDED, Transfer("a", 5), at("a"))
    assert refused(same) == RejectionCode.SAME_ACCOUNT
    timeout = decide(FUNDED, Transfer("b", 5, timeout_ms=10), at("a"))
    assert refused(timeout) == RejectionCode.INVALID_COMMAND


def test_a_transfer_id_still_open_here_is_refused() -> None:
    sending = given(AccountOpened("EUR", 0), Deposited(100), TransferDebited("t1", "b", 10, 3))
    reserved = given(AccountOpened("EUR", 0), Deposited(100), PendingReserved("t1", "b", 10))
    for state in (sending, reserved):
        again = decide(state, Transfer("c", 5), at("a", version=3))
        assert refused(again) == RejectionCode.TRANSFER_OPEN
    landed = reduce(evolve, [TransferCompleted("t1", "b")], sending)
    assert refused(decide(landed, Transfer("c", 5), at("a", version=4))) is None


def test_the_target_refuses_an_unknown_account_closed_account_or_other_currency() -> None:
    credit = CreditTransfer("t1", "a", 60, "EUR", SEQ)
    closed = given(AccountOpened("EUR", 0), AccountClosed())
    for state, code in (
        (None, RejectionCode.UNKNOWN_ACCOUNT),
        (closed, RejectionCode.ACCOUNT_CLOSED),
        (given(AccountOpened("USD", 0)), RejectionCode.CURRENCY_MISMATCH),
    ):
        decision = decide(state, credit, at("b", "credit:3:1:a:t1"))
        assert decision.events == [] and not decision.final
        assert refused(decision) == code
        refund = RefundTransfer("t1", "b", 60, code, SEQ)
        assert decision.sends == [Send("a", refund, "refund:3:1:a:t1")]


def test_a_refund_reverses_and_a_credit_credits_and_confirms() -> None:
    sent = given(AccountOpened("EUR", 0), Deposited(100), TransferDebited("t1", "b", 60, SEQ))
    refund = decide(sent, RefundTransfer("t1", "b", 60, "x", SEQ), at("a", "refund:3:1:a:t1"))
    assert refund == Decision([TransferReversed("t1", "b", 60, "x")])
    assert refused(refund) is None
    back = reduce(evolve, refund.events, sent)
    assert (back.balance, back.sending) == (100, {})
    credit = decide(FUNDED, CreditTransfer("t1", "a", 60, "EUR", SEQ), at("b", "credit:3:1:a:t1"))
    assert credit == Decision(
        [TransferCredited("t1", "a", 60)],
        [Send("a", ConfirmCredit("t1", "b", SEQ), "confirm:3:1:a:t1")],
    )


def test_a_confirmation_ends_the_sources_transfer_once() -> None:
    sent = given(AccountOpened("EUR", 0), Deposited(100), TransferDebited("t1", "b", 60, SEQ))
    other = decide(sent, ConfirmCredit("t1", "b", SEQ + 1), at("a", "confirm"))
    assert other == Decision([]), "a confirmation of another transfer with this id"
    confirmed = decide(sent, ConfirmCredit("t1", "b", SEQ), at("a", "confirm"))
    assert confirmed == Decision([TransferCompleted("t1", "b")])
    assert refused(confirmed) is None
    done = reduce(evolve, confirmed.events, sent)
    assert (done.balance, done.sending) == (40, {})
    assert [moves(e) for e in confirmed.events] == [[]], "it moves no money"
    assert decide(done, ConfirmCredit("t1", "b", SEQ), at("a", "confirm")) == Decision([])


def test_close_waits_for_transfers_in_flight() -> None:
    sent = given(AccountOpened("EUR", 0), Deposited(40), TransferDebited("t1", "b", 40, SEQ))
    assert sent is not None and sent.balance == 0
    closing = decide(sent, CloseAccount(), at("a", "close"))
    assert refused(closing) == RejectionCode.TRANSFERS_IN_FLIGHT
    landed = reduce(evolve, [TransferCompleted("t1", "b")], sent)
    assert decide(landed, CloseAccount(), at("a", "close")) == Decision([AccountClosed()])
    refunded = reduce(evolve, [TransferReversed("t1", "b", 40, "currency_mismatch")], sent)
    again = decide(refunded, CloseAccount(), at("a", "close"))
    assert refused(again) == RejectionCode.NONZERO_BALANCE


def test_close_waits_for_pending_credits_in() -> None:
    noted = given(AccountOpened("EUR", 0), PendingCreditNoted("t1", "a", 10, SEQ))
    closing = decide(noted, CloseAccount(), at("b", "close"))
    assert refused(closing) == RejectionCode.PENDING_TRANSFERS


def test_a_pending_transfer_reserves_then_posts_part_releasing_the_rest() -> None:
    decision = decide(FUNDED, Transfer("b", 70, pending=True, timeout_ms=50), at("a"))
    assert refused(decision) is None
    assert decision.events == [PendingReserved("t1", "b", 70, NOW + 50, SEQ)]
    note = NotePendingCredit("t1", "a", 70, "EUR", SEQ)
    assert decision.sends == [Send("b", note, "note:3:1:a:t1")]
    reserved = reduce(evolve, decision.events, FUNDED)
    assert (reserved.balance, reserved.pending_debits, reserved.available) == (100, 70, 30)
    over = decide(reserved, Transfer("c", 31), at("a", "t2"))
    assert refused(over) == RejectionCode.INSUFFICIENT_FUNDS
    closing = decide(reserved, CloseAccount(), at("a", "t3"))
    assert refused(closing) is not None
    posted = decide(reserved, PostPending("t1", 40), at("a", "p1"))
    assert refused(posted) is None and posted.events == [PendingPosted("t1", "b", 40, NOW)]
    settle = SettlePendingCredit("t1", "a", 40, SEQ)
    assert posted.sends == [Send("b", settle, "settle:3:1:a:t1")]
    after = reduce(evolve, posted.events, reserved)
    assert (after.balance, after.pending_debits, after.available) == (60, 0, 60)
    assert after.pending == {} and after.sending == {"t1": Pending("out", "b", 40, None, SEQ, NOW)}
    again = decide(after, VoidPending("t1"), at("a", "v1"))
    assert refused(again) == RejectionCode.UNKNOWN_PENDING


def test_the_target_keeps_pending_credits_per_source() -> None:
    # two sources may use the same transfer id: each credit is its own
    target = given(
        AccountOpened("EUR", 0),
        PendingCreditNoted("inv-1", "a", 40, 3),
        PendingCreditNoted("inv-1", "c", 25, 5),
    )
    assert target is not None and target.pending_credits == 65 and target.pending == {}
    assert target.incoming == {
        "a": {"inv-1": Pending("in", "a", 40, None, 3)},
        "c": {"inv-1": Pending("in", "c", 25, None, 5)},
    }
    released = decide(target, ReleasePendingCredit("inv-1", "a", 3), at("b", "r"))
    assert released == Decision([PendingCreditReleased("inv-1", "a")])
    assert refused(released) is None
    rest = reduce(evolve, released.events, target)
    assert rest.incoming == {"c": {"inv-1": Pending("in", "c", 25, None, 5)}}
    assert rest.pending_credits == 25
    settled = decide(rest, SettlePendingCredit("inv-1", "c", 25, 5), at("b", "s"))
    assert settled == Decision(
        [PendingCreditSettled("inv-1", "c", 25)],
        [Send("c", ConfirmCredit("inv-1", "b", 5), leg_id("confirm", "c", "inv-1", 5))],
    )
    assert refused(settled) is None
    done = reduce(evolve, settled.events, rest)
    assert (done.balance, done.pending_credits, done.incoming) == (25, 0, {})


def test_a_leg_acts_only_on_the_transfer_it_names() -> None:
    # the same id, reused by the same source: its `seq` tells the transfers apart
    target = given(AccountOpened("EUR", 0), PendingCreditNoted("t1", "a", 40, 9))
    # a release or settlement of another transfer finds no credit: it awaits its note
    awaits = PendingCreditAwaited("t1", "a", 3, "note")
    stale_release = decide(target, ReleasePendingCredit("t1", "a", 3), at("b", "r"))
    assert stale_release == Decision([awaits])
    stale_settle = decide(target, SettlePendingCredit("t1", "a", 40, 3), at("b", "s"))
    assert stale_settle.events == [awaits]
    assert refused(stale_settle) == RejectionCode.UNKNOWN_PENDING
    refund = RefundTransfer("t1", "b", 40, RejectionCode.UNKNOWN_PENDING, 3)
    assert stale_settle.sends == [Send("a", refund, leg_id("refund", "a", "t1", 3))]
    other_source = decide(target, ReleasePendingCredit("t1", "c", 9), at("b", "r"))
    assert other_source == Decision([PendingCreditAwaited("t1", "c", 9, "note")])
    reserved = given(
        AccountOpened("EUR", 0), Deposited(100), PendingReserved("t1", "b", 70, NOW, 9)
    )
    assert decide(reserved, ExpirePending("t1", 3), at("a", "e")) == Decision([])
    assert decide(reserved, VoidRefusedPending("t1", "x", 3), at("a", "v")) == Decision([])
    voided = decide(reserved, VoidRefusedPending("t1", "x", 9), at("a", "v"))
    assert voided == Decision([PendingVoided("t1", "refused")])


def test_expiry_is_due_on_the_partition_clock_and_voids_once() -> None:
    reserved = given(
        AccountOpened("EUR", 0), Deposited(100), PendingReserved("t1", "b", 70, NOW, SEQ)
    )
    assert reserved is not None
    assert due("a", reserved, NOW - 1) == []
    expire = ExpirePending("t1", SEQ)
    assert due("a", reserved, NOW) == [Send("a", expire, leg_id("expire", "a", "t1", SEQ))]
    expired = decide(reserved, expire, at("a", "expire:3:1:a:t1"))
    assert refused(expired) is None
    assert expired.events == [PendingVoided("t1", "expired")]
    release = ReleasePendingCredit("t1", "a", SEQ)
    assert expired.sends == [Send("b", release, "release:3:1:a:t1")]
    after = reduce(evolve, expired.events, reserved)
    assert due("a", after, NOW + 1) == []
    late = decide(after, PostPending("t1"), at("a", "p"))
    assert refused(late) is not None
    assert decide(after, expire, at("a", "expire:3:1:a:t1")) == Decision([])


def test_a_leg_id_names_its_transfer_and_stays_within_the_id_limit() -> None:
    assert leg_id("credit", "a", "t", 3) == "credit:3:1:a:t"
    # the source's length keeps (source, id) unambiguous even when either holds a colon
    assert leg_id("credit", "a:b", "c", 1) != leg_id("credit", "a", "b:c", 1)
    assert leg_id("credit", "a", "t", 3) != leg_id("credit", "c", "t", 3)
    assert leg_id("credit", "a", "t", 3) != leg_id("credit", "a", "t", 4)
    long = "x" * 256
    assert len(leg_id("void-refused", long, long, 2**62)) <= 256
    assert leg_id("credit", "a", long, 1) != leg_id("credit", "a", "y" * 256, 1)
    assert leg_id("credit", "a", long, 1) != leg_id("credit", "b", long, 1)
    assert leg_id("credit", "a", long, 1) != leg_id("credit", "a", long, 2)
    assert leg_id("credit", "a", long, 1) != leg_id("refund", "a", long, 1)


def test_credits_and_deposits_keep_room_for_what_may_still_come_back() -> None:
    # balance + pending credits + what is in flight from here stays within int64
    near = MAX_MINOR_UNITS - 100
    state = given(
        AccountOpened("EUR", 0),
        Deposited(near),
        TransferDebited("t1", "b", 30, 3),
        PendingCreditNoted("t2", "c", 50, 4),
    )
    assert state is not None and state.headroom == 50
    for command in (Deposit(51), CreditTransfer("t3", "c", 51, "EUR", 7)):
        decision = decide(state, command, at("a", "d", version=4))
        assert decision.events == []  # a credit is refused back to its source
        assert refused(decision) == RejectionCode.LIMIT_EXCEEDED
    assert decide(state, Deposit(50), at("a", "d", version=4)) == Decision([Deposited(50)])
    note = decide(state, NotePendingCredit("t4", "c", 51, "EUR", 8), at("a", "n", version=4))
    assert refused(note) == RejectionCode.LIMIT_EXCEEDED


def test_a_refund_not_in_flight_here_lands_only_within_the_headroom() -> None:
    # A stale writer (its successor sent the transfer) or a transfer sent before accounts
    # kept `sending` may meet a refund this state does not hold: within the headroom it
    # lands, beyond it is refused, and the balance never passes int64.
    near = MAX_MINOR_UNITS - 100
    state = given(AccountOpened("EUR", 0), Deposited(near), PendingCreditNoted("t2", "c", 30, 3))
    assert state is not None and state.headroom == 70
    beyond = decide(state, RefundTransfer("t9", "b", 71, "x", 5), at("a", "r", version=3))
    assert beyond.events == [] and refused(beyond) == RejectionCode.LIMIT_EXCEEDED
    within = decide(state, RefundTransfer("t9", "b", 70, "x", 5), at("a", "r", version=3))
    assert within.events == [TransferReversed("t9", "b", 70, "x")]
    after = reduce(evolve, within.events, state)
    assert after.balance + after.pending_credits == MAX_MINOR_UNITS
    # in flight here, the refund always lands, even with no headroom left: it counts it
    sent = given(
        AccountOpened("EUR", 0),
        Deposited(near),
        TransferDebited("t1", "b", 90, 3),
        PendingCreditNoted("t2", "c", 100, 4),
    )
    assert sent is not None and sent.headroom == 0
    back = decide(sent, RefundTransfer("t1", "b", 90, "x", 3), at("a", "r", version=4))
    assert back.events == [TransferReversed("t1", "b", 90, "x")]


def test_reservations_stay_within_int64() -> None:
    rich = given(AccountOpened("EUR", MAX_MINOR_UNITS), Deposited(MAX_MINOR_UNITS))
    first = decide(rich, Transfer("b", MAX_MINOR_UNITS, pending=True), at("a", "r1"))
    assert refused(first) is None
    reserved = reduce(evolve, first.events, rich)
    assert reserved.available == MAX_MINOR_UNITS
    more = decide(reserved, Transfer("b", 1, pending=True), at("a", "r2", version=3))
    assert refused(more) == RejectionCode.LIMIT_EXCEEDED


# --- the property ------------------------------------------------------------------------

ACCOUNTS = ("a", "b", "c")  # "c" is in USD: transfers to it are refused
OPENINGS = {"a": "EUR", "b": "EUR", "c": "USD"}

actions = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.sampled_from(ACCOUNTS), st.integers(1, 100)),
        st.tuples(
            st.just("transfer"),
            st.sampled_from(ACCOUNTS),
            st.sampled_from((*ACCOUNTS, "ghost")),
            st.integers(1, 120),
            st.sampled_from(["plain", "pending", "expiring"]),
        ),
        st.tuples(st.just("post"), st.integers(0, 30), st.one_of(st.none(), st.integers(1, 80))),
        st.tuples(st.just("void"), st.integers(0, 30)),
        st.tuples(st.just("deliver"), st.integers(1, 4)),
        st.tuples(st.just("tick"), st.integers(1, 40)),
        st.tuples(st.just("close"), st.sampled_from(ACCOUNTS)),
    ),
    max_size=60,
)


class World:
    """Accounts, their event logs, the queue of internal commands in flight (in order), and
    the money that entered and left."""

    def __init__(self) -> None:
        self.states: dict[str, Account | None] = {a: None for a in (*ACCOUNTS, "ghost")}
        self.logs: dict[str, list[Event]] = defaultdict(list)
        self.queue: deque[Send] = deque()
        self.transfers: list[tuple[str, str]] = []  # (transfer id, source)
        self.clock = NOW
        self.deposited = 0
        for account, currency in OPENINGS.items():
            self.run(account, f"open-{account}", AccountOpened(currency, 0))

    def run(self, account: str, command_id: str, command: object) -> None:
        if isinstance(command, AccountOpened):  # a shortcut: given this account
            result = Decision([command])
        else:
            context = Context(command_id, account, self.clock, len(self.logs[account]))
            result = decide(self.states[account], command, context)  # type: ignore[arg-type]
        self.queue.extend(result.sends)
        for event in result.events:
            self.states[account] = evolve(self.states[account], event)
            self.logs[account].append(event)
            if isinstance(event, Deposited):
                self.deposited += event.amount

    def deliver(self, n: int) -> None:
        for _ in range(min(n, len(self.queue))):
            send = self.queue.popleft()
            self.run(send.target, send.command_id, send.command)

    def tick(self, ms: int) -> None:
        self.clock += ms
        for account in ACCOUNTS:
            state = self.states[account]
            if state is not None:
                self.queue.extend(due(account, state, self.clock))

    def in_flight(self) -> int:
        money = Money()
        for log in self.logs.values():
            money.add(log)
        return money.in_flight

    def balances(self) -> int:
        return sum(s.balance for s in self.states.values() if s is not None)


@for_all(actions)
def test_money_is_conserved_and_the_fold_of_the_events_is_the_state(
    steps: list[tuple[object, ...]],
) -> None:
    world = World()
    for step in steps:
        match step:
            case ("deposit", account, amount):
                world.run(str(account), "deposit", Deposit(int(amount)))  # type: ignore[call-overload]
            case ("transfer", source, target, amount, kind):
                # ids are per source: two sources use the same ids (t0, t1, ...)
                tid = f"t{sum(1 for _, s in world.transfers if s == source)}"
                world.transfers.append((tid, str(source)))
                pending = kind != "plain"
                timeout = 25 if kind == "expiring" else None
                world.run(str(source), tid, Transfer(str(target), int(amount), pending, timeout))  # type: ignore[call-overload]
            case ("post", index, amount) if world.transfers:
                tid, source = world.transfers[int(index) % len(world.transfers)]  # type: ignore[call-overload]
                world.run(source, f"post-{tid}", PostPending(tid, amount))  # type: ignore[arg-type]
            case ("void", index) if world.transfers:
                tid, source = world.transfers[int(index) % len(world.transfers)]  # type: ignore[call-overload]
                world.run(source, f"void-{tid}", VoidPending(tid))
            case ("deliver", n):
                world.deliver(int(n))  # type: ignore[call-overload]
            case ("tick", ms):
                world.tick(int(ms))  # type: ignore[call-overload]
            case ("close", account):
                world.run(str(account), "close", CloseAccount())
        assert world.balances() + world.in_flight() == world.deposited
        for state in world.states.values():
            assert state is None or state.available >= 0
    world.tick(10_000)
    while world.queue:
        world.deliver(len(world.queue))
    assert world.in_flight() == 0, "at quiet nothing is in flight"
    assert world.balances() == world.deposited
    for account, state in world.states.items():
        assert state == reduce(evolve, world.logs[account], None)
        assert state is None or state.sending == {}, f"{account}: every transfer has landed"
    ends: dict[tuple[str, str], list[Event]] = defaultdict(list)  # by (source, transfer id)
    for account, log in world.logs.items():
        ends_of = [e for e in log if not isinstance(e, AccountOpened | Deposited | AccountClosed)]
        for e in ends_of:
            named = str(getattr(e, "source", account))  # a target's event names its source
            ends[(named, e.transfer_id)].append(e)  # type: ignore[union-attr]
    for transfer, seen in ends.items():
        kinds = [type(e) for e in seen]
        moved = kinds.count(TransferDebited) + kinds.count(PendingPosted)
        assert moved <= 1, f"{transfer}: one debit at most: {seen}"
        landed = kinds.count(TransferCredited) + kinds.count(PendingCreditSettled)
        assert landed + kinds.count(TransferReversed) == moved, f"{transfer}: credited or reversed"
        finished = kinds.count(PendingPosted) + kinds.count(PendingVoided)
        assert finished <= 1, f"{transfer}: posted, voided or expired, never two: {seen}"
        if PendingReserved in kinds and kinds.count(PendingCreditNoted):
            assert (PendingVoided in kinds or PendingPosted in kinds) == (
                PendingCreditReleased in kinds or PendingCreditSettled in kinds
            ), f"{transfer}: the target follows the source"
