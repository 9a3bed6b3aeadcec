"""Processes the local lab starts (database servers, the lab's own server)."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """`pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(")")[-1].strip().startswith("Z")
    except OSError:
        return False
