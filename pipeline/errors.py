"""The one error type a user sees: what is wrong, where, and how to fix it (the CLI turns it into exit code 2); and
the checks of single params.yaml values (counts, numbers, flags, lists) that raise it naming the key."""

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


def whole(value, key: str, minimum: int = 1) -> int:
    """`value` of the params key `key` (e.g. 'train.common.iters'), checked to be a whole number >= `minimum`
    (`dvc exp run -S key=abc` writes the string 'abc'; YAML's true is no count either)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"params.yaml {key}", f"{value!r} is not a whole number >= {minimum}",
                         f"set {key} to a whole number >= {minimum}")  # fmt: skip
    return value


def number(value, key: str, positive: bool = False) -> float:
    """`value` of the params key `key` as a float, checked to be a number >= 0 (> 0 when `positive`). YAML reads 6e-5
    (no dot) as the string '6e-5': the fix says how to write it."""
    kind = "positive number" if positive else "number >= 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or positive and value == 0:
        try:
            hint = f" (YAML reads {value} as text: write {float(value)!r})" if isinstance(value, str) else ""
        except ValueError:
            hint = ""
        raise InputError(f"params.yaml {key}", f"{value!r} is not a {kind}", f"set {key} to a {kind}{hint}")
    return float(value)


def flag(value, key: str) -> bool:
    """`value` of the params key `key`, checked to be true or false."""
    if not isinstance(value, bool):
        raise InputError(f"params.yaml {key}", f"{value!r} is not true or false", f"set {key} to true or false")
    return value


def listed(value, key: str, kind: type = str) -> list:
    """`value` of the params key `key`, checked to be a list of `kind` (str: names; int: whole numbers >= 0)."""
    what, example = ("names", "[a, b]") if kind is str else ("whole numbers", "[0, 1]")
    items = value if isinstance(value, list) else [None]
    if not all(isinstance(v, kind) and not isinstance(v, bool) and (kind is str or v >= 0) for v in items):
        raise InputError(f"params.yaml {key}", f"{value!r} is not a list of {what}",
                         f"set {key} to a list of {what}, e.g. {example}")  # fmt: skip
    return value
