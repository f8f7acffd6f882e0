"""The directory lock: a second holder is refused by name, a dead holder's lock is taken over."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgeflownas.errors import LockedError
from edgeflownas.locks import exclusive_lock, lock_path

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgeflownas.locks import exclusive_lock
    with exclusive_lock(Path(sys.argv[1]), "holder test"):
        print("held", flush=True)
        time.sleep(60)
""")


def test_second_process_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"pid {holder.pid} on host .* \(holder test\)"):
            with exclusive_lock(tmp_path, "second"):
                pass
    finally:
        holder.kill()
        holder.wait()
    notices = []
    with exclusive_lock(tmp_path, "after kill -9", notices.append):
        pass
    assert len(notices) == 1 and f"pid {holder.pid}" in notices[0] and "no longer running" in notices[0]


def test_same_process_second_lock_is_refused_and_clean_exit_leaves_no_holder(tmp_path):
    with exclusive_lock(tmp_path, "first"):
        with pytest.raises(LockedError, match=r"\(first\)"):
            with exclusive_lock(tmp_path, "second"):
                pass
    assert lock_path(tmp_path).read_text() == ""
    notices = []
    with exclusive_lock(tmp_path, "third", notices.append):
        pass
    assert notices == []
