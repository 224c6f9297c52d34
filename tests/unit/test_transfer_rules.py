"""The transfer rules as given / when / then, and a property: money is conserved over any
sequence of transfers, posts, voids and expiries, and the fold of the events is the state."""

from collections import defaultdict, deque
from functools import reduce

from hypothesis import given as for_all
from hypothesis import strategies as st

from eventledger.ledger import (
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
    PendingCreditNoted,
    PendingCreditReleased,
    PendingCreditSettled,
    PendingPosted,
    PendingReserved,
    PendingVoided,
    PostPending,
    Rejection,
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
)
from eventledger.ledger.internal import (
    CreditTransfer,
    ExpirePending,
    NotePendingCredit,
    RefundTransfer,
)

NOW = 1_000_000


def given(*events: Event) -> Account | None:
    return reduce(evolve, events, None)


FUNDED = given(AccountOpened("EUR", 0), Deposited(100))


def at(account: str, command_id: str = "t1", now_ms: int = NOW) -> Context:
    return Context(command_id, account, now_ms)


def test_a_transfer_debits_and_sends_the_credit_deferring_the_reply() -> None:
    decision = decide(FUNDED, Transfer("b", 60), at("a"))
    assert decision == Decision(
        [TransferDebited("t1", "b", 60)],
        [Send("b", CreditTransfer("t1", "a", 60, "EUR"), "t1/credit")],
        final=False,
    )


def test_a_transfer_needs_funds_a_positive_amount_and_another_account() -> None:
    funds = decide(FUNDED, Transfer("b", 101), at("a"))
    assert isinstance(funds, Rejection) and funds.code == RejectionCode.INSUFFICIENT_FUNDS
    amount = decide(FUNDED, Transfer("b", 0), at("a"))
    assert isinstance(amount, Rejection) and amount.code == RejectionCode.AMOUNT_NOT_POSITIVE
    same = decide(FUNDED, Transfer("a", 5), at("a"))
    assert isinstance(same, Rejection) and same.code == RejectionCode.SAME_ACCOUNT
    timeout = decide(FUNDED, Transfer("b", 5, timeout_ms=10), at("a"))
    assert isinstance(timeout, Rejection) and timeout.code == RejectionCode.INVALID_COMMAND


def test_the_target_refuses_an_unknown_account_closed_account_or_other_currency() -> None:
    credit = CreditTransfer("t1", "a", 60, "EUR")
    closed = given(AccountOpened("EUR", 0), AccountClosed())
    for state, code in (
        (None, RejectionCode.UNKNOWN_ACCOUNT),
        (closed, RejectionCode.ACCOUNT_CLOSED),
        (given(AccountOpened("USD", 0)), RejectionCode.CURRENCY_MISMATCH),
    ):
        decision = decide(state, credit, at("b", "t1/credit"))
        assert isinstance(decision, Decision)
        assert decision.events == [] and not decision.final
        assert decision.refusal is not None and decision.refusal.code == code
        assert decision.sends == [Send("a", RefundTransfer("t1", "b", 60, code), "t1/refund")]


def test_a_refund_reverses_and_a_credit_credits() -> None:
    refund = decide(FUNDED, RefundTransfer("t1", "b", 60, "x"), at("a", "t1/refund"))
    assert refund == Decision([TransferReversed("t1", "b", 60, "x")])
    credit = decide(FUNDED, CreditTransfer("t1", "a", 60, "EUR"), at("b", "t1/credit"))
    assert credit == Decision([TransferCredited("t1", "a", 60)])


def test_a_pending_transfer_reserves_then_posts_part_releasing_the_rest() -> None:
    decision = decide(FUNDED, Transfer("b", 70, pending=True, timeout_ms=50), at("a"))
    assert isinstance(decision, Decision)
    assert decision.events == [PendingReserved("t1", "b", 70, NOW + 50)]
    assert decision.sends == [Send("b", NotePendingCredit("t1", "a", 70, "EUR"), "t1/note")]
    reserved = reduce(evolve, decision.events, FUNDED)
    assert (reserved.balance, reserved.pending_debits, reserved.available) == (100, 70, 30)
    over = decide(reserved, Transfer("c", 31), at("a", "t2"))
    assert isinstance(over, Rejection) and over.code == RejectionCode.INSUFFICIENT_FUNDS
    closing = decide(reserved, CloseAccount(), at("a", "t3"))
    assert isinstance(closing, Rejection)
    posted = decide(reserved, PostPending("t1", 40), at("a", "p1"))
    assert isinstance(posted, Decision) and posted.events == [PendingPosted("t1", "b", 40)]
    after = reduce(evolve, posted.events, reserved)
    assert (after.balance, after.pending_debits, after.available) == (60, 0, 60)
    again = decide(after, VoidPending("t1"), at("a", "v1"))
    assert isinstance(again, Rejection) and again.code == RejectionCode.UNKNOWN_PENDING


def test_expiry_is_due_on_the_partition_clock_and_voids_once() -> None:
    reserved = given(AccountOpened("EUR", 0), Deposited(100), PendingReserved("t1", "b", 70, NOW))
    assert reserved is not None
    assert due("a", reserved, NOW - 1) == []
    assert due("a", reserved, NOW) == [Send("a", ExpirePending("t1"), leg_id("t1", "expire"))]
    expired = decide(reserved, ExpirePending("t1"), at("a", "t1/expire"))
    assert isinstance(expired, Decision)
    assert expired.events == [PendingVoided("t1", "expired")]
    late = decide(reduce(evolve, expired.events, reserved), PostPending("t1"), at("a", "p"))
    assert isinstance(late, Rejection)


def test_a_leg_id_stays_within_the_id_limit() -> None:
    assert leg_id("t", "credit") == "t/credit"
    assert len(leg_id("x" * 256, "void-refused")) <= 256
    assert leg_id("x" * 256, "credit") != leg_id("y" * 256, "credit")


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
            result: object = [command]
        else:
            result = decide(self.states[account], command, Context(command_id, account, self.clock))  # type: ignore[arg-type]
        events = result if isinstance(result, list) else []
        if isinstance(result, Decision):
            events = result.events
            self.queue.extend(result.sends)
        for event in events:
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
                tid = f"t{len(world.transfers)}"
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
    ends: dict[str, list[Event]] = defaultdict(list)
    for log in world.logs.values():
        ends_of = [e for e in log if not isinstance(e, AccountOpened | Deposited | AccountClosed)]
        for e in ends_of:
            ends[e.transfer_id].append(e)  # type: ignore[union-attr]
    for tid, seen in ends.items():
        kinds = [type(e) for e in seen]
        moved = kinds.count(TransferDebited) + kinds.count(PendingPosted)
        assert moved <= 1, f"{tid}: one debit at most: {seen}"
        landed = kinds.count(TransferCredited) + kinds.count(PendingCreditSettled)
        assert landed + kinds.count(TransferReversed) == moved, f"{tid}: credited or reversed"
        finished = kinds.count(PendingPosted) + kinds.count(PendingVoided)
        assert finished <= 1, f"{tid}: posted, voided or expired, never two: {seen}"
        if PendingReserved in kinds and kinds.count(PendingCreditNoted):
            assert (PendingVoided in kinds or PendingPosted in kinds) == (
                PendingCreditReleased in kinds or PendingCreditSettled in kinds
            ), f"{tid}: the target follows the source"
