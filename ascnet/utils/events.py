"""Training statistics: ``metrics.json``, TensorBoard scalars, ``json_stats`` lines, ETA.

:class:`EventWriter` is created on every rank but writes on rank 0 only:

* ``OUTPUT_DIR/metrics.json``: one JSON object per line (iteration, epoch, losses, lr, time
  per iteration, data time, ETA and every other scalar stat), appended, so a resumed run
  continues the same file; a writer opened with ``resume_iter`` first drops the lines of
  later iterations (those the resumed run replays), so each iteration appears once;
* TensorBoard scalars under ``OUTPUT_DIR/tensorboard`` (or ``TENSORBOARD.LOG_DIR``) when
  ``TENSORBOARD.ENABLE``; with ``resume_iter`` the writer purges the later steps (TensorBoard's
  ``purge_step``);
* a ``json_stats: {...}`` line in ``log.txt`` (not on the console) and one labelled human
  progress line (console and ``log.txt``) with this iteration's losses and the ETA.

Windowed statistics use fvcore's ``HistoryBuffer`` (median / average over the last values).
"""
import datetime
import json
import logging
import math
import os
from typing import Any, Dict, Optional

from fvcore.common.history_buffer import HistoryBuffer
from iopath.common.file_io import g_pathmgr

from ascnet.utils import distributed as du
from ascnet.utils.io import OutputWriteError, atomic_write_bytes, first_line
from ascnet.utils.logging import log_json_stats

logger = logging.getLogger(__name__)


def _scalar(v: Any) -> Optional[float]:
    """``v`` as a python float when it is a scalar (number, 0-d/1-element tensor), else None."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if hasattr(v, "numel") and callable(v.numel):
        if v.numel() == 1:
            return float(v.detach().float().cpu().item())
        return None
    if hasattr(v, "item") and getattr(v, "size", 2) == 1:  # numpy scalar
        return float(v.item())
    return None


def format_eta(seconds: float) -> str:
    """``3725.2`` -> ``'1:02:05'``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    return str(datetime.timedelta(seconds=int(seconds)))


class EventWriter:
    """Writes training statistics to ``metrics.json``, TensorBoard and the log (rank 0 only).

    Args:
        output_dir: the run's OUTPUT_DIR.
        tensorboard: also write TensorBoard scalars.
        tensorboard_dir: folder of the TensorBoard files ("" = ``output_dir/tensorboard``).
        window: iterations averaged in the progress line.
        resume_iter: the iteration a resumed run continues from (None: not resumed). Records
            of later iterations, which the run is about to replay, are removed first.
    """

    def __init__(
        self, output_dir: str, tensorboard: bool = False, tensorboard_dir: str = "", window: int = 20,
        resume_iter: Optional[int] = None,
    ):
        self.output_dir = output_dir
        self.metrics_path = os.path.join(output_dir, "metrics.json")
        self.tensorboard_dir = tensorboard_dir or os.path.join(output_dir, "tensorboard")
        self.enabled = du.is_main_process()
        self._history: Dict[str, HistoryBuffer] = {}
        self._window = window
        self._file = None
        self._tb = None
        if self.enabled:
            g_pathmgr.mkdirs(output_dir)
            if resume_iter is not None:
                self._drop_records_after(resume_iter)
            self._file = g_pathmgr.open(self.metrics_path, "a")
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                g_pathmgr.mkdirs(self.tensorboard_dir)
                purge = resume_iter + 1 if resume_iter is not None else None
                self._tb = SummaryWriter(log_dir=self.tensorboard_dir, purge_step=purge)

    def _drop_records_after(self, iteration: int) -> None:
        """Rewrite metrics.json without the records of iterations after ``iteration``."""
        if not g_pathmgr.exists(self.metrics_path):
            return
        with g_pathmgr.open(self.metrics_path, "r") as f:
            lines = f.readlines()
        kept = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by a kill mid-write
                continue
            if isinstance(rec, dict) and rec.get("iteration", 0) <= iteration:
                kept.append(line if line.endswith("\n") else line + "\n")
        if len(kept) != len(lines):
            atomic_write_bytes(self.metrics_path, "".join(kept))

    def update_history(self, stats: Dict[str, float], iteration: int) -> None:
        """Add one iteration's scalar stats to the windowed history (every iteration)."""
        for k, v in stats.items():
            buf = self._history.get(k)
            if buf is None:
                buf = self._history[k] = HistoryBuffer(max_length=10000)
            buf.update(float(v), iteration)

    def median(self, key: str, window: Optional[int] = None) -> float:
        """Median of ``key`` over the last ``window`` iterations (nan when never seen)."""
        buf = self._history.get(key)
        return buf.median(window or self._window) if buf is not None else float("nan")

    def global_avg(self, key: str) -> float:
        """Average of ``key`` over all iterations seen by this writer."""
        buf = self._history.get(key)
        return buf.global_avg() if buf is not None else float("nan")

    def write(self, stats: Dict[str, Any], step: int) -> None:
        """Write one record: a ``metrics.json`` line, TensorBoard scalars, a ``json_stats`` line.

        Args:
            stats: scalar statistics (non-scalars are dropped); ``iteration``/``epoch`` included.
            step: TensorBoard global step.

        Raises:
            OutputWriteError: ``metrics.json`` could not be written (e.g. disk full); one line.
        """
        if not self.enabled:
            return
        rec = {}
        for k, v in stats.items():
            keep = isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
            s = v if keep else _scalar(v)
            if s is not None:
                rec[k] = s
        try:
            self._file.write(json.dumps(rec, sort_keys=True) + "\n")
            self._file.flush()
        except OSError as e:  # disk full, quota, a vanished mount: one line instead of a traceback
            msg = (
                f"Could not append the record of iteration {rec.get('iteration', step)} to {self.metrics_path!r}: "
                f"{first_line(e, 160)}. Free space under {self.output_dir!r} (or set OUTPUT_DIR to a disk with room), then "
                "rerun with TRAIN.AUTO_RESUME True: the run resumes from its last checkpoint and rewrites the "
                "records after it."
            )
            logger.error(msg)
            raise OutputWriteError(msg, self.metrics_path) from e
        if self._tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k not in ("iteration", "epoch"):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        # log.txt only: the console shows the progress line, metrics.json is the machine record.
        log_json_stats(rec, level=logging.DEBUG)

    def progress(
        self, iteration: int, max_iter: int, epoch: int, max_epoch: int, stats: Dict[str, float], label: str = "train"
    ) -> str:
        """Log (rank 0) and return the human progress line.

        Losses, accuracy and lr are this iteration's values, the same numbers as the
        ``metrics.json`` record of the iteration (averaged over ranks); the epoch is counted
        from 1 here (``metrics.json`` keeps the 0-based ``epoch`` of the trainer); the times are
        medians over the last ``window`` iterations, and the ETA uses the mean iteration time.
        """
        eta = self.global_avg("time") * max(max_iter - iteration, 0)
        shown = [k for k in sorted(stats) if k.startswith("loss")] + [k for k in ("acc",) if k in stats]
        values = "  ".join(f"{k} {stats[k]:.4f}" for k in shown)
        line = (
            f"[{label}] epoch {epoch + 1}/{max_epoch}  iter {iteration}/{max_iter}  {values}  "
            f"lr {stats.get('lr', float('nan')):.5g}  |  s/iter {self.median('time'):.3f} (data {self.median('data_time'):.3f}, "
            f"median of {self._window})  eta {format_eta(eta)}"
        )
        if self.enabled:
            logger.info(line)
        return line

    def eta_seconds(self, iteration: int, max_iter: int) -> float:
        """Remaining seconds from the average iteration time so far."""
        return self.global_avg("time") * max(max_iter - iteration, 0)

    def close(self) -> None:
        """Flush and close the files (safe to call twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
