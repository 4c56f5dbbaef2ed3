"""pipeline/packed.py: deterministic archives, members read by path (also through mmengine's loaders), clear errors."""

from __future__ import annotations

import os
import tarfile

import cv2
import numpy as np
import pytest

from pipeline import mm, packed


@pytest.fixture
def folder(tmp_path):
    loose = tmp_path / "shard-00000"
    loose.mkdir()
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    cv2.imwrite(str(loose / "b.png"), image)
    (loose / "a_label.png").write_bytes(b"\x89PNG not really")
    return loose


def test_members_read_back_byte_for_byte_and_the_archive_is_deterministic(folder, tmp_path):
    packed.pack(folder, tmp_path / "one.tar")
    os.utime(folder / "b.png", (1, 1))  # another mtime: the archive must not record it
    packed.pack(folder, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        assert tar.getnames() == ["a_label.png", "b.png"]
        assert {(m.mtime, m.uid, m.mode) for m in tar.getmembers()} == {(0, 0, 0o644)}
    for name in ("a_label.png", "b.png"):
        assert packed.read_bytes(tmp_path / "one.tar" / name) == (folder / name).read_bytes()
    assert packed.imread(tmp_path / "one.tar" / "b.png").tolist() == cv2.imread(str(folder / "b.png")).tolist()
    assert packed.read_bytes(folder / "b.png") == (folder / "b.png").read_bytes()  # a plain path is a plain file
    assert packed.member(tmp_path / "one.tar" / "b.png") == (tmp_path / "one.tar", "b.png")
    assert packed.member(folder / "b.png") is None


def test_a_rewritten_archive_is_read_anew(folder, tmp_path):
    archive = tmp_path / "s.tar"
    packed.pack(folder, archive)
    assert packed.read_bytes(archive / "a_label.png") == b"\x89PNG not really"
    (folder / "a_label.png").write_bytes(b"longer bytes than before")
    packed.pack(folder, archive)
    assert packed.read_bytes(archive / "a_label.png") == b"longer bytes than before"


def test_missing_member_or_archive_and_a_non_image_name_the_path(folder, tmp_path):
    packed.pack(folder, tmp_path / "s.tar")
    with pytest.raises(FileNotFoundError, match=r"s.tar has no member 'c.png'"):
        packed.read_bytes(tmp_path / "s.tar" / "c.png")
    with pytest.raises(FileNotFoundError, match=r"its archive .*gone.tar is missing"):
        packed.read_bytes(tmp_path / "gone.tar" / "b.png")
    with pytest.raises(OSError, match=r"could not read image .*a_label.png"):
        packed.imread(tmp_path / "s.tar" / "a_label.png")


def test_mmcv_loader_reads_a_member_through_the_backend(folder, tmp_path):
    from mmcv.transforms import LoadImageFromFile

    packed.pack(folder, tmp_path / "s.tar")
    results = LoadImageFromFile(backend_args=mm.files())(dict(img_path=str(tmp_path / "s.tar" / "b.png")))
    assert results["img"].tolist() == cv2.imread(str(folder / "b.png")).tolist()
    assert results["img_shape"] == (6, 8)
