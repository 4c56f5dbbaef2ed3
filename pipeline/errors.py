"""The one error type a user sees: what is wrong, where, and how to fix it (the CLI turns it into exit code 2)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: a file, a row or a setting, with the fix."""

    def __init__(self, where: str | Path, problem: str, fix: str):
        self.where, self.problem, self.fix = str(where), problem, fix
        super().__init__(f"{self.where}: {problem}\n  fix: {fix}")

    def __reduce__(self):  # pickles with its three fields, so it crosses from a worker process unchanged
        return type(self), (self.where, self.problem, self.fix)


def check_keys(cfg: dict, keys: list[str], where: str, takes: str) -> None:
    """Raise an InputError at `where` for the first of `keys` missing from `cfg`, else for its first unknown key;
    the fix lists what `takes` (e.g. 'filter') takes."""
    missing, unknown = [k for k in keys if k not in cfg], sorted(set(cfg) - set(keys))
    if missing or unknown:
        problem = f"no `{missing[0]}`" if missing else f"unknown key {unknown[0]!r}"
        raise InputError(where, problem, f"{takes} takes: {', '.join(keys)}")
