"""One thin module per DVC stage: read its own section of params.yaml, call the library, write its outputs.

A section is read through the profile that `profile` names: `profiles.<profile>.<section>` is laid over the section
(mappings merge key by key, anything else replaces). A profile cannot change the shape of the DAG, which dvc.yaml
reads from the sections themselves: `DAG_KEYS` below.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import InputError

# keys dvc.yaml interpolates (stage names, dependencies): a profile that changed them would run a DAG other than
# the one DVC built, so they are set in their sections only
DAG_KEYS = {"data": ("source", "domains"), "train": ("methods", "seeds"), "det": ("methods", "seeds"),
            "filter": ("model",)}  # fmt: skip


def params(section: str, required: tuple[str, ...] = (), path: str | Path = "params.yaml") -> dict:
    """The `section` of params.yaml under the chosen profile, checked to hold the `required` keys."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no params.yaml here", "run dgsynth from the project root, where params.yaml is")
    data = yaml.safe_load(path.read_text()) or {}
    if section not in data:
        raise InputError(path, f"no `{section}` section", f"add a `{section}:` section (see the README)")
    merged = merge(data[section], overlay(data, section, path))
    blind = run_cache_blind(merged, section)
    if blind:
        raise InputError(f"{path} {blind}", "DVC's run-cache drops every params key named 'size' or 'nfiles' when it "
                         "hashes a stage, so a change to this one could bring back another run's outputs",
                         "rename the key")  # fmt: skip
    missing = [key for key in required if key not in (merged or {})]
    if missing:
        raise InputError(path, f"no `{section}.{missing[0]}`", f"add `{missing[0]}` to the `{section}` section")
    return merged


def run_cache_blind(tree, prefix: str) -> str:
    """The dotted name of the first key in `tree` that DVC's run-cache leaves out of a stage's hash ('' if none):
    dvc 3 hashes a stage's lock entry with dict_sha256(exclude=["size", "nfiles"]), which drops such keys at any depth,
    so a run with another value of one is taken for a cached run of the old value."""
    if not isinstance(tree, dict):
        return ""
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if key in ("size", "nfiles"):
            return name
        if found := run_cache_blind(value, name):
            return found
    return ""


def overlay(data: dict, section: str, path: Path) -> dict:
    """What the chosen profile changes in `section`, checked not to touch the DAG's keys."""
    if "profile" not in data:
        return {}
    name, profiles = data["profile"], data.get("profiles") or {}
    if name not in profiles:
        raise InputError(f"{path} profile", f"unknown profile {name!r}", f"use one of: {', '.join(profiles)}")
    where = f"{path} profiles.{name}"
    if section not in (profiles[name] or {}):
        raise InputError(where, f"no `{section}` entry (dvc.yaml depends on it)", f"add `{section}: {{}}` to it")
    changes = profiles[name][section] or {}
    if not isinstance(changes, dict):
        raise InputError(f"{where}.{section}", f"{changes!r} is not a mapping", "write the keys it changes, or {}")
    # data.domains may change the settings of the domains it declares, not add one
    fixed = [key for key in DAG_KEYS.get(section, ()) if key in changes and (section, key) != ("data", "domains")]
    if fixed:
        raise InputError(f"{where}.{section}.{fixed[0]}", "a profile cannot change the stages DVC runs",
                         f"set {section}.{fixed[0]} in the `{section}` section itself")
    declared = data[section].get("domains") or {}
    added = [key for key in changes.get("domains") or {} if key not in declared] if section == "data" else []
    if added:  # e.g. the smoke profile's world domains after a switch to real data
        raise InputError(f"{where}.data.domains.{added[0]}", f"a profile cannot add a domain ({added[0]} is not in "
                         "data.domains)", f"declare {added[0]} in data.domains, or remove it from "
                         f"profiles.{name}.data.domains")  # fmt: skip
    return changes


def merge(base, changes):
    """`base` with `changes` laid over it: mappings merge key by key, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(changes, dict):
        return changes
    return {**base, **{key: merge(base[key], value) if key in base else value for key, value in changes.items()}}
