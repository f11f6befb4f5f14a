"""Exit codes of the ``releasegate`` CLI and the one error type that carries them."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the server failed (500), a ledger chain is broken, or an unexpected answer
EXIT_USAGE = 2  # bad arguments or files, no or rejected token (Click uses 2 for usage too)
EXIT_REFUSED = 3  # the API refused the command: 403, 409, 422
EXIT_NOT_FOUND = 4  # unknown use case or change, or an endpoint an older server lacks
EXIT_UNREACHABLE = 5  # connection error, timeout, or 503
EXIT_WAIT_TIMEOUT = 6  # --wait gave up before the stage changed


class CliError(Exception):
    """Printed as one line on stderr (``title: detail``), then the process exits with ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
