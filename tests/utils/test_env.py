"""Worker-side hooks of utils.env."""
import subprocess
import sys


def test_abandoned_handle_transfers_are_quiet_and_other_errors_still_print():
    # What multiprocessing's resource_sharer thread does with an error: sys.excepthook.
    code = (
        "import sys\n"
        "from ascnet.utils.env import quiet_abandoned_handle_transfers\n"
        "quiet_abandoned_handle_transfers()\n"
        "for e in (EOFError('peer gone'), ConnectionResetError('reset'), ValueError('a real error')):\n"
        "    try:\n"
        "        raise e\n"
        "    except Exception:\n"
        "        sys.excepthook(*sys.exc_info())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ValueError: a real error" in r.stderr
    assert "EOFError" not in r.stderr and "ConnectionResetError" not in r.stderr
