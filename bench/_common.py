"""What the stack benchmarks share: start the stack, run the measurement in an event loop,
stop everything it started whatever happens, and turn the outcome into the exit status the
benchmarks document (``bench/README.md``)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol


class StackLike(Protocol):
    """What ``run_on_stack`` needs of ``bench.gated_path.Stack`` (or a subclass)."""

    temporal_address: str | None

    def start_temporal(self) -> None: ...

    def start_services(self) -> None: ...

    def stop(self) -> None: ...


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def failure(exc: Exception, keep: bool) -> int:
    """Clear lines (and where the logs are) instead of a bare traceback; the exit status."""
    causes = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    for cause in causes:
        print(f"\nbenchmark failed: {type(cause).__name__}: {cause}", file=sys.stderr)
    if not keep:
        print("(re-run with --keep to inspect the process logs)", file=sys.stderr)
    return 2


def run_on_stack(
    stack: StackLike,
    tmp: Path,
    keep: bool,
    benchmark: Callable[[], Coroutine[Any, Any, int]],
) -> int:
    """Start ``stack`` in ``tmp`` (a Temporal dev server unless it reuses one, the worker and
    the API), run ``benchmark()`` and stop what was started; remove ``tmp`` unless ``keep``.
    The exit status: the benchmark's, 130 when interrupted (Ctrl-C or SIGTERM), 2 when it
    failed."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if stack.temporal_address is None:
            stack.start_temporal()
        stack.start_services()
        print(f"stack up: Temporal {stack.temporal_address}, data {tmp}", flush=True)
        return asyncio.run(benchmark())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return failure(exc, keep)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
