"""One thin module per DVC stage: read its own section of params.yaml, call the library, write its outputs."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import InputError


def params(section: str, path: str | Path = "params.yaml") -> dict:
    """The `section` of params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no params.yaml here", "run dgsynth from the project root, where params.yaml is")
    data = yaml.safe_load(path.read_text()) or {}
    if section not in data:
        raise InputError(path, f"no `{section}` section", f"add a `{section}:` section (see the README)")
    return data[section]
