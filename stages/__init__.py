"""One thin module per DVC stage: read its own section of params.yaml, call the library, write its outputs."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import InputError


def params(section: str, required: tuple[str, ...] = (), path: str | Path = "params.yaml") -> dict:
    """The `section` of params.yaml, checked to hold the `required` keys."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no params.yaml here", "run dgsynth from the project root, where params.yaml is")
    data = yaml.safe_load(path.read_text()) or {}
    if section not in data:
        raise InputError(path, f"no `{section}` section", f"add a `{section}:` section (see the README)")
    missing = [key for key in required if key not in (data[section] or {})]
    if missing:
        raise InputError(path, f"no `{section}.{missing[0]}`", f"add `{missing[0]}` to the `{section}` section")
    return data[section]
