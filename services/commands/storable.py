"""Text a run records must be storable wherever it goes: refuse U+0000 before anything is sent.

PostgreSQL refuses the NUL character in ``text`` and ``jsonb`` values. A comment, summary or
evidence name holding one would be recorded by the workflow and then refused by the store for
good: the run's ledger stops there (503 ``ledger-blocked``) until an operator repairs it. So the
command layer refuses it as invalid input (422), naming the field, before the command is sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.commands.errors import CommandRefused
from workflows.model import Refusal

NUL = "\x00"


def nul_field(value: Any, where: str = "") -> str | None:
    """The dotted path of the first string in ``value`` (a JSON-like dump) holding a NUL, or
    None when there is none. Mapping keys count as text too."""
    if isinstance(value, str):
        return where if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if NUL in str(key):
                return path
            found = nul_field(item, path)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = nul_field(item, f"{where}.{i}" if where else str(i))
            if found is not None:
                return found
    return None


def refuse_unstorable(model: BaseModel) -> None:
    """``CommandRefused(INVALID)`` naming the first field of ``model`` that holds a NUL."""
    where = nul_field(model.model_dump(mode="json"))
    if where is not None:
        raise CommandRefused(
            Refusal.INVALID, f"{where or 'text'}: must not contain the NUL character (U+0000)"
        )


__all__ = ["nul_field", "refuse_unstorable"]
