"""ascnet.engine.preemption: signals held back to the block's end; the current-trainer record."""
import os
import signal

from ascnet.engine import preemption
from ascnet.engine.preemption import defer_signals


def test_defer_signals_delays_handler_to_block_exit():
    import threading

    got = []
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)  # a thread whose mask does not block SIGUSR2
    helper.start()
    old = signal.signal(signal.SIGUSR2, lambda s, f: got.append("handled"))
    try:
        with defer_signals():
            os.kill(os.getpid(), signal.SIGUSR2)
            got.append("still inside")
        got.append("after")
    finally:
        signal.signal(signal.SIGUSR2, old)
        stop.set()
        helper.join()
    assert got == ["still inside", "handled", "after"]


def test_current_trainer_is_recorded_and_cleared():
    assert preemption.get_current_trainer() is None
    marker = object()
    preemption.set_current_trainer(marker)
    try:
        assert preemption.get_current_trainer() is marker
    finally:
        preemption.set_current_trainer(None)
    assert preemption.get_current_trainer() is None
