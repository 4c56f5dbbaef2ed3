"""Setup and packaging: pyproject.toml declares every package the code imports, and scripts/setup.sh refuses a wrong
Python, or a missing compiler or Python.h where it must compile mmcv, before it installs anything."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"pipeline", "stages", "bench"}
# bench scripts run as `python bench/<name>.py`, so they import their sibling modules (bench/provenance.py) by name
BENCH_MODULES = {path.stem for path in (REPO / "bench").glob("*.py")}


def imported_packages() -> dict[str, str]:
    """Every top-level module imported anywhere in pipeline/, stages/ and bench/ (not the standard library's nor our
    own), with one file that imports it."""
    found = {}
    for path in sorted(p for folder in FIRST_PARTY for p in (REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names | FIRST_PARTY | BENCH_MODULES:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependencies() -> list[str]:
    """The requirement strings of pyproject.toml's [project] dependencies."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def test_pyproject_declares_every_imported_package() -> None:
    declared = {normalize(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in dependencies()}
    distributions = metadata.packages_distributions()
    undeclared = {module: where for module, where in imported_packages().items()
                  if not declared & {normalize(d) for d in distributions.get(module, [module])}}  # fmt: skip
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_declared_pins_match_the_lock() -> None:
    """Every `name==version` of pyproject.toml is the version requirements.lock pins."""
    lock = dict(normalize_pin(line) for line in (REPO / "requirements.lock").read_text().splitlines()
                if re.match(r"^[A-Za-z0-9].*==", line))  # fmt: skip
    pins = [normalize_pin(spec.split(";")[0]) for spec in dependencies() if "==" in spec]
    assert [(name, lock.get(name)) for name, _ in pins] == pins


def normalize_pin(spec: str) -> tuple[str, str]:
    name, version = spec.split("==")
    return normalize(name.strip()), version.split()[0].strip()


# ---- scripts/setup.sh, copied into a bare folder (no ../shared/wheels there) and run only up to its first checks


def setup(tmp_path: Path, python: str, *, path: str | None = None, cached_wheel: bool = False):
    """Run a copy of scripts/setup.sh with PYTHON=`python`, an empty (or mmcv-holding) wheel cache, `path` as PATH."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    cache = tmp_path / "cache"
    if cached_wheel:
        (cache / "torch-2.13.0").mkdir(parents=True)
        (cache / "torch-2.13.0" / "mmcv-2.1.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    env = {"PYTHON": python, "DGSYNTH_WHEEL_CACHE": str(cache), "HOME": str(tmp_path),
           "PATH": path or os.environ["PATH"]}  # fmt: skip
    result = subprocess.run(["/bin/bash", str(repo / "scripts" / "setup.sh")], env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert not (repo / ".venv").exists()  # refused before creating anything
    return result


def stub_python(tmp_path: Path, version: str, include: Path) -> str:
    """A stand-in interpreter: it answers the version and sysconfig questions, and fails at anything else."""
    stub = tmp_path / "python"
    stub.write_text(f'#!/bin/bash\ncase "$*" in\n  *version_info*) echo {version};;\n  *sysconfig*) echo {include};;\n'
                    "  *) exit 3;;\nesac\n")  # fmt: skip
    stub.chmod(0o755)
    return str(stub)


def bare_path(tmp_path: Path) -> str:
    """A PATH with only the tools setup.sh runs before its compile check: no cc, c++, gcc or g++."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("dirname", "mkdir", "ls", "head"):
        (bare / tool).symlink_to(shutil.which(tool))
    return str(bare)


def test_setup_refuses_another_python(tmp_path: Path) -> None:
    result = setup(tmp_path, stub_python(tmp_path, "3.10", tmp_path))
    assert result.returncode == 1
    assert "is Python 3.10, but dgsynth needs Python 3.11" in result.stderr
    assert "apt-get install python3.11 python3.11-venv" in result.stderr and "PYTHON=python3.11" in result.stderr


def test_setup_refuses_a_python_that_does_not_run(tmp_path: Path) -> None:
    result = setup(tmp_path, str(tmp_path / "no-such-python"))
    assert result.returncode == 1 and "cannot run" in result.stderr and "Python 3.11" in result.stderr


def test_compiling_mmcv_needs_a_compiler(tmp_path: Path) -> None:
    result = setup(tmp_path, sys.executable, path=bare_path(tmp_path))
    assert result.returncode == 1
    assert "compiling mmcv 2.1.0 needs a C and a C++ compiler" in result.stderr
    assert "apt-get install build-essential" in result.stderr and "../shared/wheels" in result.stderr


def test_compiling_mmcv_needs_the_python_headers(tmp_path: Path) -> None:
    result = setup(tmp_path, stub_python(tmp_path, "3.11", tmp_path / "include"))
    assert result.returncode == 1 and "compiling mmcv 2.1.0 needs" in result.stderr
    assert f"the Python 3.11 headers ({tmp_path}/include/Python.h)" in result.stderr
    assert "python3.11-dev)" in result.stderr


def test_no_compile_check_with_a_cached_wheel(tmp_path: Path) -> None:
    """With an mmcv wheel at hand, nothing is compiled, so no compiler is asked for (the stub then fails at venv)."""
    result = setup(tmp_path, stub_python(tmp_path, "3.11", tmp_path), path=bare_path(tmp_path), cached_wheel=True)
    assert result.returncode == 3 and "compil" not in result.stderr
