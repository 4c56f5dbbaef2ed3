"""What every benchmark records about the code it measured: the project's commit, marked when bench/ has changes."""

from __future__ import annotations

import subprocess


def commit() -> str:
    """`git rev-parse --short HEAD`, with " (bench/ modified)" when bench/ has uncommitted changes."""
    git = [["git", "rev-parse", "--short", "HEAD"], ["git", "status", "--porcelain", "--", "bench"]]
    head, dirty = (subprocess.run(a, capture_output=True, text=True, timeout=30).stdout.strip() for a in git)
    return head + (" (bench/ modified)" if dirty else "")
