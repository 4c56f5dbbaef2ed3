"""Files packed into uncompressed tar archives, read by a path that goes through the archive:
`data/synthetic/shard-00000.tar/<id>.png` is the member `<id>.png` of `data/synthetic/shard-00000.tar`.

DVC hashes a directory output file by file, and keeps a state entry per file: 50,000 synthetic images and their
labels as loose PNGs made a no-op `dvc status` take seconds (bench/dvc_scale.py). The synthesize stage packs each
finished shard into one archive, so its output is a few hundred files at any size.

Archives are deterministic (members in name order, mtime 0, owner 0, mode 0644, ustar): the same files give the same
bytes, and so the same DVC hash. A member is read with one seek and one read of the archive, at the offset an index
gives (built once per archive and process, and rebuilt when the archive changes); data loader workers forked after
that share nothing but the path.
"""

from __future__ import annotations

import functools
import tarfile
from pathlib import Path

import cv2
import numpy as np

from pipeline.atomic import atomic_path

SUFFIX = ".tar"


def pack(folder: Path, archive: Path) -> None:
    """Write every file of `folder` (not recursive) into the archive `archive`, atomically."""
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with open(path, "rb") as f:
                tar.addfile(info, f)


def member(path: str | Path) -> tuple[Path, str] | None:
    """(archive, member name) of a path that goes through an archive; None for any other path."""
    path = Path(path)
    return (path.parent, path.name) if path.parent.suffix == SUFFIX else None


@functools.lru_cache(maxsize=64)
def _index(archive: str, inode: int, mtime_ns: int, size: int) -> dict[str, tuple[int, int]]:
    with tarfile.open(archive) as tar:
        return {info.name: (info.offset_data, info.size) for info in tar.getmembers() if info.isfile()}


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file, or of an archive's member (see the module)."""
    inside = member(path)
    if inside is None or Path(path).is_file():
        return Path(path).read_bytes()
    archive, name = inside
    try:
        stat = archive.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"no file {path}: its archive {archive} is missing") from None
    if name not in (index := _index(str(archive), stat.st_ino, stat.st_mtime_ns, stat.st_size)):
        raise FileNotFoundError(f"no file {path}: {archive} has no member {name!r}")
    offset, size = index[name]
    with open(archive, "rb") as f:
        f.seek(offset)
        return f.read(size)


def imread(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """cv2.imread of a file or an archive's member; an error naming the path where it is not an image."""
    image = cv2.imdecode(np.frombuffer(read_bytes(path), np.uint8), flags)
    if image is None:
        raise OSError(f"could not read image {path}")
    return image
