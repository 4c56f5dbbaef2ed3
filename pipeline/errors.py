"""The one error type a user sees: what is wrong, where, and how to fix it (the CLI turns it into exit code 2)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: a file, a row or a setting, with the fix."""

    def __init__(self, where: str | Path, problem: str, fix: str):
        self.where, self.problem, self.fix = str(where), problem, fix
        super().__init__(f"{self.where}: {problem}\n  fix: {fix}")
