"""Terminal output for the long-running commands, kept apart from the function's own logs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console


@contextlib.contextmanager
def function_output_to(path: Path) -> Iterator[Console]:
    """Send everything written to standard output (the handler's JSON logs and EMF metrics) to
    ``path``, and give back a console on the real terminal for progress and summaries.

    Done on the file descriptor, not ``sys.stdout``: Powertools binds its handler to the stream
    it found at import, so only a descriptor-level redirect reaches it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    saved = os.dup(1)
    terminal: TextIO = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8")
    with path.open("w", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        try:
            tty = terminal.isatty()
            # A log file or CI output is read later, in a wider window than 80 columns.
            yield Console(file=terminal, force_terminal=tty, soft_wrap=False, width=None if tty else 160)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            terminal.close()
