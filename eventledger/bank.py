"""``BankClient``: the ledger's client with its transfer API and its typed reads of the
accounts (``actors.client`` and ``actors.reads`` are generic over the aggregate and never
import the domain; the service assembles them here).

Every transfer command is sent to the SOURCE account (commands are routed by account): the
transfer id is the command id of its ``Transfer``; ``post_pending`` and ``void_pending`` name
it and the source. A command id is executed at most once within the idempotency window, so
``transfer`` re-sends the same transfer id until its one final reply comes.

Money in flight and its settlement read the service's own topics and write its internal
commands: they run as the service (``actors.deployment.run_as_service``), over Ray like the
reads, so a client holding only the API's Kafka principal can do them too (the HTTP API
lets only tokens with the ``operate`` scope settle).
"""

from __future__ import annotations

from functools import cached_property

from actors.client import LedgerClient
from actors.deployment import run_as_service
from actors.reads import Reads
from eventledger.transfers import InFlightTransfer, Settlement, in_flight, settle
from ledger.commands import PostPending, Transfer, VoidPending
from ledger.state import AccountView
from topology.envelopes import Reply
from topology.ids import check_command_id, check_id

__all__ = ["BankClient"]


def _transfer(target: str, amount: int, pending: bool, timeout_ms: int | None) -> Transfer:
    """The transfer command, its target checked against the id rule (InvalidIdError)."""
    return Transfer(check_id(target, "a transfer's target"), amount, pending, timeout_ms)


class BankClient(LedgerClient):
    """``LedgerClient`` plus transfers between accounts (plain and two-phase), and ``reads``
    of the accounts' committed state."""

    @cached_property
    def reads(self) -> Reads[AccountView]:
        """The accounts' committed views, history and past states (over Ray), routed by
        this client's routing."""
        return Reads(self.settings, AccountView, routes=self.routes)

    def transfer(
        self,
        source: str,
        target: str,
        amount: int,
        *,
        transfer_id: str | None = None,
        pending: bool = False,
        pending_timeout_ms: int | None = None,
        first_attempt_ms: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Move ``amount`` from ``source`` to ``target`` (``execute``'s retries): one final
        reply, accepted once the target credited it, rejected when it was refused (and the
        debit reversed). With ``pending``, only reserve it (the reply comes once both sides
        recorded the reservation); ``pending_timeout_ms`` voids it on the source's clock."""
        command = _transfer(target, amount, pending, pending_timeout_ms)
        return self.execute(
            source,
            command,
            command_id=transfer_id,
            first_attempt_ms=first_attempt_ms,
            timeout=timeout,
        )

    async def transfer_async(
        self,
        source: str,
        target: str,
        amount: int,
        *,
        transfer_id: str | None = None,
        pending: bool = False,
        pending_timeout_ms: int | None = None,
        first_attempt_ms: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """The asyncio form of ``transfer``."""
        command = _transfer(target, amount, pending, pending_timeout_ms)
        return await self.execute_async(
            source,
            command,
            command_id=transfer_id,
            first_attempt_ms=first_attempt_ms,
            timeout=timeout,
        )

    def post_pending(
        self,
        transfer_id: str,
        *,
        source: str,
        amount: int | None = None,
        command_id: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Complete pending transfer ``transfer_id`` of account ``source`` with ``amount``
        (None: all that is reserved; less releases the rest)."""
        command = PostPending(check_command_id(transfer_id), amount)
        return self.execute(source, command, command_id=command_id, timeout=timeout)

    def void_pending(
        self,
        transfer_id: str,
        *,
        source: str,
        command_id: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Release pending transfer ``transfer_id`` of account ``source``."""
        return self.execute(
            source,
            VoidPending(check_command_id(transfer_id)),
            command_id=command_id,
            timeout=timeout,
        )

    def in_flight(self, older_than_ms: int = 0) -> list[InFlightTransfer]:
        """The transfers debited and not yet settled, at least ``older_than_ms`` old, oldest
        first, each with its lost legs (``eventledger.transfers.in_flight``, run as the
        service)."""
        return run_as_service(self.settings.app_id, in_flight, older_than_ms=older_than_ms)

    def settle(
        self,
        transfer_id: str,
        *,
        source: str,
        refund: bool,
        operator: str,
        reason: str,
        wait_s: float = 30.0,
    ) -> Settlement:
        """Settle the lost leg(s) of transfer ``transfer_id`` of ``source`` once: the money
        back to the source (``refund``) or the leg delivered as it was, recorded with
        ``operator`` and ``reason``. Raises ``eventledger.transfers.SettlementError`` when
        nothing of it is lost (``eventledger.transfers.settle``, run as the service)."""
        return run_as_service(
            self.settings.app_id,
            settle,
            source=source,
            transfer_id=transfer_id,
            refund=refund,
            operator=operator,
            reason=reason,
            wait_s=wait_s,
        )
