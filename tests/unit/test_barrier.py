"""The order barrier's rule (``actors.barrier``): a command for an account is held only
while the client's commands for it are in flight to another partition than its owner now;
held commands go out in order when those are answered, given up or ``timeout`` old."""

from __future__ import annotations

from actors.barrier import OrderBarrier

TIMEOUT = 30.0


class World:
    """A routing table of accounts to partitions and a clock, both set by hand."""

    def __init__(self) -> None:
        self.owners: dict[str, int] = {}
        self.now = 0.0

    def barrier(self) -> OrderBarrier[str]:
        return OrderBarrier(lambda a: self.owners.get(a, 0), TIMEOUT, clock=lambda: self.now)


def test_nothing_is_held_while_owners_stay() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0, "b": 1}
    assert [barrier.admit("a", f"a{i}", f"a{i}") for i in range(3)] == [0, 0, 0]
    assert barrier.admit("b", "b0", "b0") == 1
    assert (barrier.held_total, barrier.holding) == (0, 0)
    assert barrier.done("a", "a1") == []
    assert barrier.admit("a", "a3", "a3") == 0


def test_a_command_after_a_move_waits_for_the_ones_in_flight_to_the_old_owner() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0, "b": 0}
    assert barrier.admit("a", "deposit", "deposit") == 0
    assert barrier.admit("a", "other", "other") == 0
    world.owners = {"a": 2, "b": 2}  # both move; only a has commands in flight
    assert barrier.admit("a", "withdraw", "withdraw") is None
    assert barrier.admit("a", "close", "close") is None  # behind the held one
    assert barrier.admit("b", "b0", "b0") == 2  # b has nothing in flight: not held
    assert (barrier.held_total, barrier.holding) == (2, 2)
    assert barrier.done("a", "deposit") == []  # "other" is still in flight to 0
    world.now = 0.25
    assert barrier.done("a", "other") == [("withdraw", 2), ("close", 2)]
    assert (barrier.holding, barrier.held_seconds) == (0, 0.5)
    assert barrier.admit("a", "next", "next") == 2


def test_a_move_of_another_account_holds_nothing() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0, "b": 1}
    assert barrier.admit("a", "a0", "a0") == 0
    assert barrier.admit("b", "b0", "b0") == 1
    world.owners = {"a": 0, "b": 3}
    assert barrier.admit("a", "a1", "a1") == 0
    assert barrier.held_total == 0


def test_held_commands_go_in_order_once_the_old_ones_time_out() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0}
    barrier.admit("a", "lost", "lost")  # at 0, never answered
    world.now = 10.0
    world.owners = {"a": 1}
    for i in range(3):
        assert barrier.admit("a", f"c{i}", f"c{i}") is None
    world.now = TIMEOUT - 0.1
    assert barrier.expire() == []
    world.now = TIMEOUT
    assert barrier.expire() == [("c0", 1), ("c1", 1), ("c2", 1)]
    assert barrier.holding == 0


def test_a_held_command_given_up_is_never_released() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0}
    barrier.admit("a", "first", "first")
    world.owners = {"a": 1}
    assert barrier.admit("a", "second", "second") is None
    assert barrier.admit("a", "third", "third") is None
    assert barrier.done("a", "second") == []  # its caller gave up while it waited
    assert barrier.done("a", "first") == [("third", 1)]


def test_a_retry_of_a_held_command_stays_one_held_command() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0}
    barrier.admit("a", "first", "first")
    world.owners = {"a": 1}
    assert barrier.admit("a", "second", "second") is None
    assert barrier.admit("a", "second", "second again") is None
    assert barrier.held_total == 1
    assert barrier.done("a", "first") == [("second", 1)]


def test_a_retry_in_flight_does_not_wait_for_itself_but_for_the_earlier_ones() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0}
    barrier.admit("a", "alone", "alone")
    world.owners = {"a": 1}
    assert barrier.admit("a", "alone", "alone") == 1  # its retry goes to the new owner
    assert barrier.admit("a", "after", "after") == 1  # behind the retry on partition 1

    world.owners = {"b": 0}
    barrier.admit("b", "b0", "b0")
    barrier.admit("b", "b1", "b1")
    world.owners = {"b": 1}
    assert barrier.admit("b", "b1", "b1") is None  # b0 may still be forwarded after it
    assert barrier.done("b", "b0") == [("b1", 1)]


def test_released_commands_go_to_the_owner_at_their_release() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0}
    barrier.admit("a", "first", "first")
    world.owners = {"a": 1}
    assert barrier.admit("a", "second", "second") is None
    world.owners = {"a": 2}  # moved again before the first is answered
    assert barrier.done("a", "first") == [("second", 2)]


def test_answered_accounts_are_forgotten_and_unanswered_ones_swept() -> None:
    world = World()
    barrier = world.barrier()
    barrier.admit("a", "a0", "a0")
    barrier.done("a", "a0")
    barrier.admit("b", "b0", "b0")  # never answered
    assert set(barrier._accounts) == {"b"}
    world.now = TIMEOUT
    barrier.expire()
    assert barrier._accounts == {}


def test_a_retry_keeps_its_first_attempt_so_it_stops_blocking_on_time() -> None:
    world = World()
    barrier = world.barrier()
    world.owners = {"a": 0}
    assert barrier.admit("a", "a0", "a0") == 0
    world.now = 10.0
    assert barrier.admit("a", "a1", "a1") == 0
    world.now = 20.0
    assert barrier.admit("a", "a0", "a0 again") == 0  # a retry, in flight since 0
    world.owners = {"a": 1}
    world.now = TIMEOUT + 1  # a0 is past the timeout, a1 is not
    assert barrier.admit("a", "a2", "a2") is None
    assert barrier.done("a", "a1") == [("a2", 1)]  # a0 no longer counts
