"""Preemption support shared by the trainer and the SLURM launcher: which trainer is running, and
holding back the cluster's signals until an iteration boundary.

The contract (used by ``ascnet/engine/slurm.py``, kept by ``ascnet/engine/trainer.py``):

* while a trainer's ``train()`` runs, :func:`get_current_trainer` returns it (the trainer calls
  :func:`set_current_trainer` on entry and ``set_current_trainer(None)`` on exit);
* every iteration runs inside :func:`defer_signals`, which holds back SIGUSR2 and SIGTERM, so a
  signal handler (submitit's, which calls ``ASCNetJob.checkpoint()`` and then the trainer's
  ``save_checkpoint()``) only runs between two iterations, on a consistent state.

Outside SLURM, :func:`stop_on_signals` makes SIGINT and SIGTERM end a run by an exception
(:class:`Terminated` for SIGTERM), so that loaders stop their workers on the way out.

This module imports nothing heavy (no torch): a signal handler may run while the job is still
importing, and reading the current trainer must never trigger an import.
"""
import contextlib
import signal
import threading
from typing import Any, Iterator, Optional

_CURRENT_TRAINER: Optional[Any] = None

# Signals that a cluster sends to ask for a checkpoint (submitit: SIGUSR2) or to stop.
DEFERRED_SIGNALS = tuple(s for s in (getattr(signal, "SIGUSR2", None), getattr(signal, "SIGTERM", None)) if s)


def get_current_trainer() -> Optional[Any]:
    """The trainer whose ``train()`` is running in this process, or None."""
    return _CURRENT_TRAINER


def set_current_trainer(trainer: Optional[Any]) -> None:
    """Record ``trainer`` as the running one (None: no trainer runs). Called by ``Trainer.train``."""
    global _CURRENT_TRAINER
    _CURRENT_TRAINER = trainer


@contextlib.contextmanager
def defer_signals(signals=DEFERRED_SIGNALS) -> Iterator[None]:
    """Hold back ``signals`` (default SIGUSR2, SIGTERM) inside the block; deliver them on exit.

    A signal that arrives inside the block runs its handler right after the block, in the
    main thread. Two layers, because ``pthread_sigmask`` alone is not enough in a process with
    other threads (OpenMP, CUDA, NCCL, loader threads): the kernel hands a process-wide signal
    to any thread that does not block it, and CPython then runs the Python handler in the main
    thread at once, mid-iteration. So inside the block:

    * the main thread's mask blocks the signals (``signal.pthread_sigmask``), and threads or
      processes started inside the block inherit that mask;
    * the Python handlers are swapped for one that only records the signal; on exit the mask
      and the handlers are restored and every recorded signal is raised again.

    Main thread only; a no-op in other threads. Signals whose handler is SIG_IGN or was not
    set from Python are left alone.
    """
    if not signals or threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []

    def _record(signum, frame):
        if signum not in pending:
            pending.append(signum)

    saved = {}
    for s in signals:
        h = signal.getsignal(s)
        if h is None or h is signal.SIG_IGN:
            continue
        saved[s] = h
        signal.signal(s, _record)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if old_mask is not None:
            # Unblocking delivers kernel-pending signals; CPython runs _record for them here.
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for s, h in saved.items():
            if signal.getsignal(s) is _record:
                signal.signal(s, h)
        for s in pending:
            signal.raise_signal(s)  # the real handler runs now, at the boundary


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException like KeyboardInterrupt: no ``except Exception`` takes it)."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block, SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated`.

    CPython runs a Python signal handler in whatever code the main thread is executing. An
    exception raised while a finalizer or an at-fork hook runs (the DataLoader iterator's
    ``__del__``, which joins its workers, takes a good share of an epoch boundary; creating the
    next iterator forks) is handed to ``sys.unraisablehook`` and dropped, and the run would go on
    as if no signal had come. So such a dropped stop is sent again 50 ms later, until it lands
    in ordinary code. Handlers already installed by someone else (a launcher's) are left alone;
    in the trainer SIGTERM still waits for the end of the iteration (:func:`defer_signals`). The
    handlers and the hook are restored on exit. Main thread only (elsewhere a no-op).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import sys

    exc_of = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}

    def handler(signum, frame):
        raise exc_of[signum]()

    saved = {}
    for s, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        if signal.getsignal(s) is default:
            saved[s] = signal.signal(s, handler)
    previous_hook, previous_alarm = sys.unraisablehook, signal.getsignal(signal.SIGALRM)

    def resend_dropped_stop(unraisable) -> None:
        for s in saved:
            if unraisable.exc_type is exc_of[s]:
                signal.signal(signal.SIGALRM, lambda _signum, _frame, s=s: signal.raise_signal(s))
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                return
        previous_hook(unraisable)

    sys.unraisablehook = resend_dropped_stop
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        for s, h in saved.items():
            signal.signal(s, h)
