"""The shared fixtures of tests/conftest.py that stand in for hostile file systems, and that tests use them."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def test_only_conftest_mounts_file_systems():
    """A small disk or a read-only file system comes from the ``tmpfs`` fixture, with its one skip rule."""
    mounting = re.compile(r"""["'](u?mount)["']""")
    own = [str(path.relative_to(TESTS)) for path in sorted(TESTS.rglob("*.py"))
           if path != TESTS / "conftest.py" and mounting.search(path.read_text(encoding="utf-8"))]
    assert own == [], f"these test files mount their own file systems; use the tmpfs fixture instead: {own}"


def test_tmpfs_has_the_size_asked_and_fill_disk_fills_it(tmpfs, fill_disk):
    disk = tmpfs("disk", "64k")
    stat = os.statvfs(disk)
    assert stat.f_blocks * stat.f_frsize == 64 * 1024
    fill_disk(disk, leave=8192)
    free = os.statvfs(disk).f_bavail * stat.f_frsize
    assert 0 < free <= 8192 + stat.f_frsize
    with pytest.raises(OSError) as full:
        (disk / "more").write_bytes(b"x" * (free + 2 * stat.f_frsize))
    assert full.value.errno == errno.ENOSPC


def test_read_only_folder_refuses_a_new_file(read_only_folder):
    with pytest.raises(OSError) as refused:
        (read_only_folder / "x").write_text("x")
    assert refused.value.errno in (errno.EROFS, errno.EACCES)
