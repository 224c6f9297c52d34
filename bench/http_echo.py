"""``python -m bench.http_echo CONFIG``: the HTTP echo limit of the ``http`` phase: a minimal
FastAPI app on one uvicorn process whose ``POST /accounts/{id}/deposits`` sends the deposit
through the raw echo (``bench.systems.echo``: the command's own bytes come back on its reply
lane) with ``LedgerClient``'s request/reply channel and answers once the echo has. No auth,
no limits, no deadlines, no state: what an HTTP front of Kafka costs at least. Says "ready"
with its port once it listens; serves until it is killed."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI

from bench.peers import peer_channel
from bench.wire import emit
from eventledger.runtime import free_port
from ledger.commands import Deposit

__all__ = ["main"]


def main(cfg: dict[str, Any]) -> None:
    channel = peer_channel(cfg["bootstrap"], cfg["app_id"], int(cfg["partitions"]), echo=True)
    app = FastAPI()

    @app.post("/accounts/{account}/deposits")
    async def deposit(account: str, body: dict[str, int]) -> dict[str, Any]:
        reply = await asyncio.wrap_future(channel.send(account, Deposit(body["amount"])))
        return {"account": account, "accepted": reply.accepted}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        emit("ready", port=port)
        await task

    with channel:
        uvloop.run(serve())


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
