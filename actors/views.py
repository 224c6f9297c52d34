"""The queries every member of a partition answers (its writer and its standbys), from the
committed state it holds (``actors.committed.Committed``).

Invariant: a query reads under ``Committed.changed``, the lock every change holds, so it never
sees a batch half installed; a read with bounds waits on that condition (notified by every
change: the writer's commits, a standby's tail), never polls.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from actors.committed import Committed
from actors.messages import ServedBy, ViewAt
from topology.codec.keys import encode_key
from topology.envelopes import Position
from topology.settings import Settings

__all__ = ["MemberViews"]


class MemberViews:
    """The queries of a member of partition ``partition`` holding ``committed``; answers say
    they were served by ``served_by``."""

    settings: Settings
    partition: int
    committed: Committed
    served_by: ClassVar[ServedBy]

    def get(self, aggregate_id: str) -> msgspec.Struct | None:
        """The public view of one aggregate as committed (the aggregate's view Struct), or
        None."""
        with self.committed.changed:
            return self._view(aggregate_id)[0]

    def read(
        self, aggregate_id: str, min_version: int = 0, at_least: Position | None = None
    ) -> ViewAt:
        """The aggregate's committed view at this partition's position, once its version is
        at least ``min_version`` and the position at least ``at_least`` (a position of this
        partition: ValueError otherwise). Waits on the state's changes (not a poll) up to
        ``Settings.read_wait_ms``; still short, the view as it is, with ``reached`` False.
        On the writer this answers its own read-your-writes (a batch is installed just after
        its commit, while its replies are visible at the commit); on a standby, a read
        ahead of its tail. An aggregate whose slot this partition does not own is answered
        at once with ``owner`` (where to ask) and no view."""
        with self.committed.changed:
            owner = self._elsewhere(aggregate_id)
        if owner is not None:
            at = self.committed.at(self.partition)
            return ViewAt(view=None, version=0, position=at, reached=False, owner=owner)
        if at_least is not None and at_least.partition != self.partition:
            raise ValueError(
                f"position {at_least} is of partition {at_least.partition}; "
                f"{aggregate_id!r} is on partition {self.partition}"
            )
        c = self.committed

        def reached() -> bool:
            slot = c.states.get(aggregate_id)
            version = 0 if slot is None else slot.version
            return version >= min_version and (at_least is None or c.seq >= at_least.seq)

        with c.changed:
            met = c.changed.wait_for(reached, timeout=self.settings.read_wait_ms / 1000)
            view, version = self._view(aggregate_id)
            return ViewAt(
                view=view,
                version=version,
                position=c.at(self.partition),
                reached=met,
                served_by=self.served_by,
            )

    def read_batch(self, aggregate_ids: list[str]) -> list[ViewAt]:
        """``read`` without bounds of each aggregate (of this partition), in order, all at
        one position: one hold of the lock and one call for a reader's batch of reads. An
        aggregate whose slot it does not own is answered with ``owner``, as ``read`` does."""
        with self.committed.changed:
            position = self.committed.at(self.partition)
            found = []
            for aggregate_id in aggregate_ids:
                owner = self._elsewhere(aggregate_id)
                view, version = (None, 0) if owner is not None else self._view(aggregate_id)
                found.append(
                    ViewAt(
                        view=view,
                        version=version,
                        position=position,
                        reached=owner is None,
                        served_by=self.served_by,
                        owner=owner,
                    )
                )
            return found

    def _elsewhere(self, aggregate_id: str) -> int | None:
        """The partition that owns the aggregate's slot when this one does not (under the
        lock; None: this one does, or the application has no slots)."""
        c = self.committed
        mine = c.slots(self.partition)
        if mine is None:
            return None
        return mine.elsewhere(encode_key(aggregate_id), c.routing, self.partition)

    def _view(self, aggregate_id: str) -> tuple[msgspec.Struct | None, int]:
        """The aggregate's view (None: unknown, or only refused commands so far) and
        version."""
        slot = self.committed.states.get(aggregate_id)
        if slot is None:
            return None, 0
        if slot.state is None:
            return None, slot.version
        view: msgspec.Struct = self.committed.aggregate.view(slot.state, slot.version)
        return view, slot.version

    def views(self) -> dict[str, msgspec.Struct]:
        """Every aggregate's committed public view (the aggregate's view Structs)."""
        view = self.committed.aggregate.view
        with self.committed.changed:
            return {
                k: view(s.state, s.version)
                for k, s in self.committed.states.items()
                if s.state is not None
            }

    def position(self) -> Position:
        """Where this member's state stands: the commit sequence it holds."""
        with self.committed.changed:
            return self.committed.at(self.partition)
