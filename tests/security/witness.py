"""A C2SP tlog-witness on loopback: checks the log's signature and the consistency proof from
the size it last cosigned, then answers with a cosignature/v1 line — and refuses (409) a
different tree of a size it already cosigned, which is how a forked history gets caught."""

from __future__ import annotations

import asyncio
import base64
import time

from aiohttp import web

from services.tlog.auditor import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    Verifier,
    open_note,
    verify_consistency,
)
from services.tlog.note import NoteSigner, new_seed
from tests.harness import serve_loopback


class LoopbackWitness:
    def __init__(self, log_keys: list[Verifier]) -> None:
        self.log_keys = log_keys
        self.signer = NoteSigner("witness.test/w1", new_seed(), alg=ALG_COSIGNATURE_V1)
        self.size = 0
        self.root: bytes | None = None
        self.cosigned: list[int] = []
        self.refused: list[tuple[int, str]] = []
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def vkey(self) -> str:
        return self.signer.verifier.vkey

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/add-checkpoint", self._add_checkpoint)
        self._runner, self.url = await serve_loopback(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refuse(self, status: int, reason: str, size: int) -> web.Response:
        self.refused.append((size, reason))
        return web.Response(status=status, text=reason)

    async def _add_checkpoint(self, request: web.Request) -> web.Response:
        head, _, note = (await request.text()).partition("\n\n")
        lines = head.split("\n")
        try:
            old = int(lines[0].removeprefix("old "))
            proof = [base64.b64decode(line) for line in lines[1:] if line]
            checkpoint = Checkpoint.parse(open_note(note, self.log_keys)[0].text)
        except (NoteError, ValueError):
            return self._refuse(403, "not signed by the log", -1)
        async with self._lock:  # check and record atomically (the spec's race)
            if old > checkpoint.size:
                return self._refuse(400, "old size beyond the checkpoint", checkpoint.size)
            if old != self.size:
                self.refused.append((checkpoint.size, "old size mismatch"))
                return web.Response(
                    status=409, text=f"{self.size}\n", content_type="text/x.tlog.size"
                )
            if old == checkpoint.size and checkpoint.root != self.root:
                return self._refuse(409, "same size, another root: a fork", checkpoint.size)
            if old and not verify_consistency(
                old, checkpoint.size, self.root or b"", checkpoint.root, proof
            ):
                return self._refuse(422, "inconsistent with what I cosigned", checkpoint.size)
            self.size, self.root = checkpoint.size, checkpoint.root
            self.cosigned.append(checkpoint.size)
            body = note.partition("\n\n")[0] + "\n"
            return web.Response(text=self.signer.cosign(body, int(time.time())))
