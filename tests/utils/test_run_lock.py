"""The run lock: held by the run's process only, released by its death, removed on a clean end."""
import os
import signal
import subprocess
import sys

import pytest

from ascnet.utils.run_lock import LOCK_NAME, RunLockError, hold_run_lock

# A run that takes the lock, forks a child that lives on (as a DataLoader worker outlives a
# SIGKILLed trainer for a few seconds), says so, and waits to be killed.
_HOLDER = """
import os, sys, time
from ascnet.utils.run_lock import hold_run_lock
with hold_run_lock(sys.argv[1]):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_holders_forked_child_does_not_keep_the_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunLockError, match=f"PID {proc.pid}"):
            with hold_run_lock(str(tmp_path)):
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # The forked child is still alive and holds the lock file open: the lock is free anyway.
        with hold_run_lock(str(tmp_path)):
            assert (tmp_path / LOCK_NAME).read_text().startswith("host ")
        assert not (tmp_path / LOCK_NAME).exists()  # removed when the run ends
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_contender_that_opened_the_file_before_its_removal_locks_the_new_file(tmp_path):
    with hold_run_lock(str(tmp_path)):
        stale = open(tmp_path / LOCK_NAME, "a+")  # opened while the first run holds the lock
    try:
        # The first run ended and removed the file; a run that locks through the stale handle's
        # path gets a fresh file, and a third run is refused by it.
        with hold_run_lock(str(tmp_path)):
            inode = os.stat(tmp_path / LOCK_NAME).st_ino
            assert inode != os.fstat(stale.fileno()).st_ino
            child = subprocess.run([sys.executable, "-c", f"from ascnet.utils.run_lock import hold_run_lock\n"
                                    f"with hold_run_lock({str(tmp_path)!r}): pass"], capture_output=True, text=True,
                                   timeout=60)
            assert child.returncode != 0 and "RunLockError" in child.stderr
    finally:
        stale.close()
