#!/usr/bin/env bash
# One-time setup: a virtual environment in .venv with dgsynth and its pinned stack, on Python 3.11 (checked first).
#
# mmcv 2.1.0 ships no wheels on PyPI, so its CPU ops are compiled once (about 7 minutes on 2 cores) and the wheel is
# kept in a wheel cache outside the repo ($DGSYNTH_WHEEL_CACHE, default ~/.cache/dgsynth/wheels); a second setup, even
# from a fresh clone, takes seconds. A matching prebuilt wheel in ../shared/wheels is copied into that cache instead.
# Only when it compiles does it need a C/C++ compiler and the Python headers; it checks them before any download.
# At the end it compiles dgsynth's threaded CPU RoIAlign and NMS (pipeline/det/kernels, about 50 s, kept in torch's
# extension cache) when there is a C++ compiler with OpenMP; without one, mmcv's own kernels run (the same results,
# slower).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH=2.13.0
MMCV=2.1.0
CACHE=${DGSYNTH_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dgsynth/wheels}/torch-$TORCH
DEBIAN_PYTHON="Debian/Ubuntu: apt-get install python3.11 python3.11-venv"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# The stack in requirements.lock is pinned and tested on Python 3.11 only: check the interpreter of the environment
# (the one in $VENV when it exists) before anything is installed.
base=$PYTHON
[ -x "$VENV/bin/python" ] && base=$VENV/bin/python
version=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) ||
  die "cannot run '$base': install Python 3.11 ($DEBIAN_PYTHON) or set PYTHON=/path/to/python3.11"
if [ "$version" != 3.11 ]; then
  [ "$base" = "$PYTHON" ] || die "$VENV was made with Python $version, but dgsynth needs Python 3.11: remove $VENV and run PYTHON=python3.11 bash scripts/setup.sh"
  die "$base is Python $version, but dgsynth needs Python 3.11 (requirements.lock is pinned and tested there): install it ($DEBIAN_PYTHON) and run PYTHON=python3.11 bash scripts/setup.sh"
fi

# Compiling mmcv needs a C/C++ compiler and the Python headers: check them before any download or build.
need_build_tools() {
  local include missing="" packages=()
  { command -v cc || command -v gcc; } >/dev/null && { command -v c++ || command -v g++; } >/dev/null ||
    { missing="a C and a C++ compiler (cc or gcc, c++ or g++)"; packages+=(build-essential); }
  include=$("$base" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$include/Python.h" ] ||
    { missing="${missing:+$missing and }the Python $version headers ($include/Python.h)"; packages+=("python$version-dev"); }
  [ -z "$missing" ] || die "compiling mmcv $MMCV needs $missing: install them (Debian/Ubuntu: apt-get install \
${packages[*]}), or put a prebuilt mmcv-$MMCV-$tag wheel into ../shared/wheels"
}

mkdir -p "$CACHE"
tag=cp${version/./}
wheel=$(ls "$CACHE"/mmcv-$MMCV-$tag-$tag-*.whl 2>/dev/null | head -n 1 || true)
shared=$(ls ../shared/wheels/mmcv-$MMCV-$tag-$tag-*.whl 2>/dev/null | head -n 1 || true)
[ -n "$wheel$shared" ] || need_build_tools

[ -x "$VENV/bin/python" ] || { say "creating $VENV with $($PYTHON --version)"; "$PYTHON" -m venv "$VENV"; }
PY="$PWD/$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check "uv==0.13.9"
export VIRTUAL_ENV="$PWD/$VENV" UV_LINK_MODE=copy
uv() { "$PWD/$VENV/bin/uv" "$@"; }

# uv does not read pip's configuration: pass pip's find-links folders (a local torch CPU wheel, say) explicitly.
links=(--find-links "$CACHE")
for d in $("$PY" -m pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}; do
  [ -d "$d" ] && links+=(--find-links "$d")
done

if [ -z "$wheel" ]; then
  if [ -n "$shared" ]; then
    say "using prebuilt $(basename "$shared")"
    cp "$shared" "$CACHE/"
  else
    say "building mmcv $MMCV with CPU ops against torch $TORCH (once; about 7 minutes on 2 cores)"
    uv pip install -q "${links[@]}" "torch==$TORCH" "setuptools>=77.0.3,<81" ninja wheel
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-2} CFLAGS="-O3 -g0 -DNDEBUG -fwrapv" \
      "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$CACHE" "mmcv==$MMCV"
  fi
fi

say "installing the pinned stack (requirements.lock) and dgsynth"
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, every import would compile again.
uv pip install -q --compile-bytecode "${links[@]}" -r requirements.lock
uv pip install -q --no-deps -e .

"$PY" - <<'PY'
import mmcv.ops, torch  # noqa: F401  (fails here, not in the first stage, when the ops did not build)
from pipeline.det.kernels import kernel

# pipeline/det/kernels, compiled once (about 50 s) into torch's extension cache; without a compiler it warns
kernels = "dgsynth's CPU kernels are built" if kernel() is not None else "RoIAlign and NMS run on mmcv's kernels"
print(f"[setup] ok: torch {torch.__version__}, mmcv ops load, {kernels}; activate with 'source .venv/bin/activate'")
PY
