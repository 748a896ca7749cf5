"""The training loop shared by pretraining and the downstream tasks.

(Past 450 lines on purpose: the loop, its hooks and the preemption contract below are one piece
that every task subclasses; the resume policy lives in ``ascnet/engine/resume.py``.)

:class:`Trainer` builds the model, optimiser, lr schedule, training loader and checkpointer
from the config, then runs epochs of iterations: batch to device and the batched augmentation
there (:meth:`Trainer.prepare_batch`, ``AUG.DEVICE device``), forward (AMP autocast on CUDA), sum of the ``loss*`` entries, backward, optional gradient clipping, optimiser step,
scheduler step, ``model.after_step(iteration, max_iter)`` (ASCNet's EMA), logging and
checkpointing. Tasks customise it by overriding its ``build_*`` methods,
:meth:`Trainer.load_initial_weights`, :meth:`Trainer.run_step`, :meth:`Trainer.before_train`,
:meth:`Trainer.after_epoch` (e.g. evaluation every ``TRAIN.EVAL_PERIOD`` epochs) and
:meth:`Trainer.after_train`.

Counting: ``trainer.iter`` is the number of optimiser steps done so far in the whole run;
``trainer.epoch`` the current epoch (0-based); ``trainer.epoch_iter`` the batches done in it.
``model.after_step(k, max_iter)`` receives the 0-based index ``k`` of the step just done.

Resuming: a checkpoint records ``iteration``, ``epoch`` and ``epoch_iter``. With
``TRAIN.AUTO_RESUME`` the run continues from the last checkpoint in ``OUTPUT_DIR``; a mid-epoch
checkpoint continues with the next batch of the same epoch ordering (the sampler's
``set_epoch(epoch, start_iter)``), so a resumed run sees exactly the batches an uninterrupted
run would have seen.

Preemption contract (SLURM, ``ascnet/engine/slurm.py``; helpers in ``ascnet/engine/preemption.py``):

* while :meth:`Trainer.train` runs, ``preemption.get_current_trainer()`` returns the trainer;
* :meth:`Trainer.save_checkpoint` saves the full state at the current iteration boundary
  (rank 0 writes; no collective, so it is safe in a signal handler on every rank);
* every iteration (forward, backward, step, EMA, logging, periodic checkpoint) runs inside
  ``preemption.defer_signals()``, which blocks SIGUSR2 and SIGTERM with ``signal.pthread_sigmask`` (and
  holds back their Python handlers, since another thread may take a process-wide signal);
  they are let through between iterations. A Python signal handler (submitit's) therefore
  only runs at an iteration boundary and sees a consistent model / optimiser / counter state. The data
  loader's iterator (its worker processes and pin-memory thread) is also created with the
  signals blocked, so those inherit the mask: a SIGUSR2 sent to every process of the job is
  handled by the main process alone instead of killing the workers.

Statistics stay on the device: a step queues them and they are read in one transfer every
``LOG_PERIOD`` iterations (and before each checkpoint), so a step makes no host
synchronisation of its own on a GPU.

Stopping on divergence: a NaN or Inf loss stops the run with :class:`NonFiniteLossError`
naming the losses and the iteration; the check runs on the statistics' transfer, so the run
stops at most ``LOG_PERIOD`` iterations after the bad one, and always before the next save:
nothing is saved after it, so the last checkpoint on disk is the last good state.
"""
import contextlib
import logging
import os
import time
from typing import Any, Dict, Optional

import torch
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr
from torch import nn

from ascnet.config.config import save_config
from ascnet.data.batch_augment import augment_batch, build_batch_augment
from ascnet.engine.preemption import defer_signals, set_current_trainer
from ascnet.engine.resume import check_fresh_start, check_same_run, resume_position
from ascnet.engine.step import (
    StepStatistics, channels_last_clips, compile_backbones, is_scalar, losses_finite, to_channels_last,
)
from ascnet.solver import build_lr_scheduler, build_optimizer, total_iterations
from ascnet.utils import distributed as du
from ascnet.utils.checkpoint import Checkpointer
from ascnet.utils.env import seed_all
from ascnet.utils.events import EventWriter
from ascnet.utils.logging import setup_logging

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf; training stopped without saving."""


class Trainer:
    """Epoch/iteration training loop with checkpoints, logging and exact resume.

    The constructor seeds python / numpy / torch with ``RNG_SEED + rank`` before building the
    model, so initial weights depend on the config only.

    Args:
        cfg: the run config (frozen).
        mode: dataset mode of the training loader: "pretrain" (S clips per video) or "train"
            (one clip). Default: "pretrain" for ``TASK pretrain``, else "train".

    Attributes:
        model: the model on its device (the object whose forward is called: DDP-wrapped when
            distributed and the model has no ``wrap_ddp``).
        optimizer, scheduler, scaler, train_loader, checkpointer: built from the config.
        iters_per_epoch, max_iter: loop lengths.
        iter, epoch, epoch_iter: progress counters (see the module docstring).
    """

    def __init__(self, cfg: CfgNode, mode: Optional[str] = None):
        self.cfg = cfg
        self.mode = mode or ("pretrain" if cfg.TASK == "pretrain" else "train")
        setup_logging(cfg.OUTPUT_DIR)  # idempotent; makes sure log.txt is in this run's folder
        # Seeded here too (launch() already did, with the same value): model initialisation is
        # then reproducible whichever launcher started the process (torchrun, SLURM, a notebook).
        seed_all(cfg.RNG_SEED + du.get_rank())
        self.device = self.get_device(cfg)

        model = self.build_model(cfg).to(self.device)
        if cfg.MODEL.CHANNELS_LAST:
            model = to_channels_last(model)
        if cfg.MODEL.COMPILE:
            self.compile_backbones(model)  # before DDP, in place: state-dict keys unchanged
        # AUG.DEVICE "device": batches carry uint8 clips and augmentation parameters, applied here.
        self.batch_augment = build_batch_augment(cfg).to(self.device)
        self.train_loader = self.build_train_loader(cfg)
        self.sampler = self._find_sampler(self.train_loader)
        if self.sampler is not None:
            self.sampler.set_epoch(0, 0)
        self.iters_per_epoch = len(self.train_loader)
        self.optimizer = self.build_optimizer(cfg, model)
        self.scheduler = self.build_lr_scheduler(cfg, self.optimizer, self.iters_per_epoch)
        self.max_iter = total_iterations(cfg, self.iters_per_epoch)
        self.amp_dtype = self._amp_dtype(cfg)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.model = self.wrap_distributed(model)
        self.checkpointer = Checkpointer(
            cfg.OUTPUT_DIR,
            self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            max_to_keep=cfg.TRAIN.CHECKPOINT_MAX_KEEP,
        )
        self.iter = 0
        self.epoch = 0
        self.epoch_iter = 0
        self.start_iter = 0
        self.writer: Optional[EventWriter] = None
        self._last_saved_iter = -1
        self.step_stats = StepStatistics(self.device)  # since the last flush_stats

    # ------------------------------------------------------------------------------------------
    # Building blocks (override in subclasses)
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def get_device(cfg: CfgNode) -> torch.device:
        """``cuda:<local rank>`` when ``NUM_GPUS > 0``, else the CPU."""
        if cfg.NUM_GPUS > 0:
            if not torch.cuda.is_available():
                raise RuntimeError("NUM_GPUS > 0 but CUDA is not available. Set NUM_GPUS 0 to train on CPU.")
            return torch.device("cuda", du.get_local_rank())
        return torch.device("cpu")

    def build_model(self, cfg: CfgNode) -> nn.Module:
        """``build_model(cfg)`` from the MODEL registry (moved to the device by the caller)."""
        from ascnet.modeling.meta_arch import build_model

        return build_model(cfg)

    def compile_backbones(self, model: nn.Module) -> None:
        """``MODEL.COMPILE``: :func:`ascnet.engine.step.compile_backbones` (in place)."""
        compile_backbones(model)

    def build_train_loader(self, cfg: CfgNode):
        """``build_loader(cfg, TRAIN.SPLIT, self.mode)``."""
        from ascnet.data.loader import build_loader

        return build_loader(cfg, cfg.TRAIN.SPLIT, self.mode)

    def build_optimizer(self, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        """:func:`ascnet.solver.build_optimizer`."""
        return build_optimizer(cfg, model)

    def build_lr_scheduler(self, cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
        """:func:`ascnet.solver.build_lr_scheduler` (stepped every iteration)."""
        return build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    def wrap_distributed(self, model: nn.Module) -> nn.Module:
        """Wrap for DDP when several processes run.

        A model with ``wrap_ddp(fn)`` (ASCNet) chooses what to wrap (its online network); any
        other model is wrapped whole. Returns the module whose forward the loop calls.
        """
        if du.get_world_size() == 1:
            return model
        dev = self.device

        def ddp(module: nn.Module) -> nn.Module:
            return nn.parallel.DistributedDataParallel(
                module, device_ids=[dev.index] if dev.type == "cuda" else None,
                output_device=dev.index if dev.type == "cuda" else None,
            )

        if hasattr(model, "wrap_ddp"):
            model.wrap_ddp(ddp)
            return model
        return ddp(model)

    @staticmethod
    def _amp_dtype(cfg: CfgNode) -> Optional[torch.dtype]:
        if cfg.NUM_GPUS > 0 and torch.cuda.is_available() and cfg.AMP.ENABLE:
            return torch.bfloat16 if cfg.AMP.DTYPE == "bfloat16" else torch.float16
        return None  # CPU runs in float32

    @staticmethod
    def _find_sampler(loader) -> Any:
        for s in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            if s is not None and hasattr(s, "set_epoch"):
                return s
        return None

    # ------------------------------------------------------------------------------------------
    # Weights and checkpoints
    # ------------------------------------------------------------------------------------------
    def load_initial_weights(self, path: str) -> Any:
        """Initialise the model from ``path`` (``TRAIN.CHECKPOINT_FILE_PATH``) when nothing is
        resumed. Default: the checkpoint's model weights, non-strict (missing/unexpected keys
        are logged). Downstream tasks override this (e.g. backbone-only loading)."""
        return self.checkpointer.load(path, checkpointables=[], strict=False, rng=False)

    def resume_or_load(self) -> None:
        """Resume from the last checkpoint (``TRAIN.AUTO_RESUME``) or load initial weights; the
        policy (which run a folder holds, where to continue, what a fresh start may overwrite)
        is :mod:`ascnet.engine.resume`'s."""
        cfg = self.cfg
        path = self.checkpointer.find_resume_checkpoint() if cfg.TRAIN.AUTO_RESUME else ""
        if path:
            check_same_run(cfg, path)
            extra = self.checkpointer.load(path)
            self.iter, self.epoch, self.epoch_iter = resume_position(extra, self.iters_per_epoch)
            logger.info(
                "Resumed from %s: iteration %d, epoch %d, batch %d of the epoch.",
                path, self.iter, self.epoch + 1, self.epoch_iter,
            )
            self._last_saved_iter = self.iter
        else:
            check_fresh_start(self.checkpointer, cfg.TRAIN.AUTO_RESUME)
            if cfg.TRAIN.CHECKPOINT_FILE_PATH:
                logger.info("Initialising weights from %s", cfg.TRAIN.CHECKPOINT_FILE_PATH)
                self.load_initial_weights(cfg.TRAIN.CHECKPOINT_FILE_PATH)
        self.start_iter = self.iter
        # Written only now: a run refused above leaves the folder's config.yaml as it was.
        if du.is_main_process():
            g_pathmgr.mkdirs(cfg.OUTPUT_DIR)
            save_config(cfg, os.path.join(cfg.OUTPUT_DIR, "config.yaml"))

    def _position(self):
        # A finished epoch is recorded as the start of the next one.
        if self.epoch_iter >= self.iters_per_epoch:
            return self.epoch + 1, 0
        return self.epoch, self.epoch_iter

    def save_checkpoint(self, name: Optional[str] = None) -> Optional[str]:
        """Save the full state at the current iteration boundary (rank 0 writes).

        Args:
            name: file name without suffix; default ``checkpoint_iter_<iteration>``.

        Returns:
            The path written on rank 0, None on other ranks.
        """
        # Between two reads (a signal handler's save): never save past a NaN of this rank; no
        # collective here, and the queue stays for the next flush_stats.
        for it, epoch, rec in self.step_stats.read() if len(self.step_stats) else []:
            if not losses_finite(rec):
                self._nonfinite(it, epoch, rec)
        epoch, epoch_iter = self._position()
        name = name or f"checkpoint_iter_{self.iter:07d}"
        path = self.checkpointer.save(
            name,
            iteration=self.iter,
            epoch=epoch,
            epoch_iter=epoch_iter,
            iters_per_epoch=self.iters_per_epoch,
            cfg=self.cfg.dump(),
        )
        self._last_saved_iter = self.iter
        return path

    # ------------------------------------------------------------------------------------------
    # Loop
    # ------------------------------------------------------------------------------------------
    def train(self) -> None:
        """Run training from the resumed position to ``max_iter`` / ``SOLVER.MAX_EPOCH``."""
        cfg = self.cfg
        self.resume_or_load()
        with defer_signals():  # TensorBoard's writer thread inherits the blocked mask
            self.writer = EventWriter(
                cfg.OUTPUT_DIR, tensorboard=cfg.TENSORBOARD.ENABLE, tensorboard_dir=cfg.TENSORBOARD.LOG_DIR,
                window=max(cfg.LOG_PERIOD, 1), resume_iter=self.start_iter,
            )
        logger.info(
            "Training %s: %d iterations (%d per epoch, %d epochs), from iteration %d on %s.",
            type(du.unwrap(self.model)).__name__, self.max_iter, self.iters_per_epoch, cfg.SOLVER.MAX_EPOCH,
            self.iter, self.device,
        )
        set_current_trainer(self)
        try:
            self.before_train()
            while self.epoch < cfg.SOLVER.MAX_EPOCH and self.iter < self.max_iter:
                self.train_epoch(self.epoch, self.epoch_iter)
                if self.epoch_iter < self.iters_per_epoch:
                    break  # stopped by MAX_ITERS in the middle of the epoch
                self.after_epoch(self.epoch)
                self.epoch, self.epoch_iter = self.epoch + 1, 0
            if self._last_saved_iter != self.iter:
                self.save_checkpoint("checkpoint_final")
            self.after_train()
        finally:
            set_current_trainer(None)
            self.writer.close()

    def train_epoch(self, epoch: int, start_iter: int) -> None:
        """Run the iterations of ``epoch`` from its batch ``start_iter``."""
        self.epoch, self.epoch_iter = epoch, start_iter
        if self.sampler is not None:
            self.sampler.set_epoch(epoch, start_iter)
        elif start_iter:
            logger.warning("The training loader's sampler has no set_epoch(): mid-epoch resume replays from the epoch start.")
        self.model.train()
        with defer_signals():  # workers and the pin-memory thread inherit the blocked mask
            data_iter = iter(self.train_loader)
        t_end = time.perf_counter()
        while self.epoch_iter < self.iters_per_epoch and self.iter < self.max_iter:
            try:
                batch = next(data_iter)
            except StopIteration:
                logger.warning("The loader ended after %d of %d batches in epoch %d.", self.epoch_iter, self.iters_per_epoch, epoch + 1)
                self.epoch_iter = self.iters_per_epoch
                break
            data_time = time.perf_counter() - t_end
            with defer_signals():
                stats = self.run_step(batch)
                self.iter += 1
                self.epoch_iter += 1
                now = time.perf_counter()
                stats["data_time"] = data_time
                stats["time"] = now - t_end
                self.after_step(stats)
            t_end = time.perf_counter()
        del data_iter

    def to_device(self, batch: Any) -> Any:
        """Move every tensor of a (nested) batch to the device."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    def prepare_batch(self, batch: Any) -> Any:
        """Batch to the device, then the batched augmentation (``AUG.DEVICE`` "device": uint8
        clips + ``"aug"`` parameters -> normalised float clips, one op per step for the whole
        batch; float clips are an error naming the dataset class). With ``AUG.DEVICE`` "loader"
        the dataset returns augmented float clips, which pass through."""
        batch = self.to_device(batch)
        if isinstance(batch, dict):
            if self.cfg.AUG.DEVICE == "device":
                source = type(getattr(self.train_loader, "dataset", None)).__name__
                batch = augment_batch(batch, self.batch_augment, source=f"Dataset {source} (TRAIN.DATASET)")
            if self.cfg.MODEL.CHANNELS_LAST and isinstance(batch.get("clips"), torch.Tensor):
                batch["clips"] = channels_last_clips(batch["clips"])
        return batch

    def autocast(self):
        """AMP autocast on CUDA (``AMP.*``); no autocast on CPU."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def run_step(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """One optimiser step on ``batch``; returns this iteration's scalar statistics.

        The statistics the step computes on the device (losses, their sum ``loss``, the model's
        scalar outputs, ``grad_norm``, tensors returned by ``model.after_step``) stay there as
        0-d tensors: :meth:`after_step` queues them and :meth:`flush_stats` reads them in one
        transfer per ``LOG_PERIOD`` (a step makes no host synchronisation of its own).
        Python numbers (``lr``, ...) are returned as they are.
        """
        batch = self.prepare_batch(batch)
        with self.autocast():
            out = self.model(batch)
        losses = {k: v for k, v in out.items() if k.startswith("loss")}
        if not losses:
            raise ValueError(
                f"{type(du.unwrap(self.model)).__name__}.forward returned no 'loss*' entry (got {sorted(out)}); "
                "in training mode a model must return its weighted losses as loss_<name> entries."
            )
        total = sum(v.float() for v in losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        clip = self.cfg.SOLVER.CLIP_GRAD_NORM
        grad_norm = None
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                grad_norm = self._clip(clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            if clip > 0:
                grad_norm = self._clip(clip)
            self.optimizer.step()
        stats: Dict[str, Any] = dict(list(losses.items()) + [("loss", total)])
        stats.update((k, v) for k, v in out.items() if not k.startswith("loss"))
        if grad_norm is not None:
            stats["grad_norm"] = grad_norm
        stats["lr"] = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        after = getattr(du.unwrap(self.model), "after_step", None)
        if callable(after):
            stats.update(after(self.iter, self.max_iter) or {})
        return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in stats.items() if is_scalar(v)}

    def _clip(self, max_norm: float) -> torch.Tensor:
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def flush_stats(self) -> Dict[str, float]:
        """Read the queued statistics (:class:`ascnet.engine.step.StepStatistics`, one
        device-to-host copy), check the losses of every queued step on every rank, and add each
        step to the history (``metrics.json``'s windows, the progress line).

        Returns:
            The statistics of the last queued step as floats (empty when none was queued).

        Raises:
            NonFiniteLossError: a loss of a queued step is NaN/Inf (here or on another rank):
                the first such step is named; the steps before it enter the history.
        """
        records, first_bad = self.step_stats.flush()
        for i, (it, epoch, rec) in enumerate(records):
            if i == first_bad:
                self._nonfinite(it, epoch, rec)
            self.writer.update_history(rec, it)
        return records[-1][2] if records else {}

    def _nonfinite(self, iteration: int, epoch: int, stats: Dict[str, float]) -> None:
        last = self.checkpointer.get_checkpoint_file() or "none yet"
        values = ", ".join(f"{k}={v:.6g}" for k, v in stats.items() if k.startswith("loss"))
        msg = (
            f"Non-finite loss at iteration {iteration} (epoch {epoch + 1}, rank {du.get_rank()}): {values}. "
            f"Training stopped without saving; the last good checkpoint is {last}. Lower SOLVER.BASE_LR, set "
            "SOLVER.CLIP_GRAD_NORM, or use AMP.DTYPE bfloat16, then rerun with TRAIN.AUTO_RESUME True."
        )
        logger.error(msg)
        raise NonFiniteLossError(msg)

    # ------------------------------------------------------------------------------------------
    # Hooks
    # ------------------------------------------------------------------------------------------
    def before_train(self) -> None:
        """Called once before the first iteration (after resuming)."""

    def after_step(self, stats: Dict[str, Any]) -> None:
        """After every iteration: queue the statistics; every ``LOG_PERIOD`` (and before a
        checkpoint, at the end of an epoch and of the run) read them and check the losses
        (:meth:`flush_stats`), then log; iteration checkpoints.

        A NaN/Inf loss therefore stops the run at the next flush, at most ``LOG_PERIOD``
        iterations after it, and always before anything is saved.
        """
        cfg = self.cfg
        self.step_stats.queue(self.iter, self.epoch, stats)
        last = self.iter >= self.max_iter
        log = self.iter % cfg.LOG_PERIOD == 0 or self.iter == self.start_iter + 1 or last
        save = cfg.TRAIN.CHECKPOINT_ITERS > 0 and self.iter % cfg.TRAIN.CHECKPOINT_ITERS == 0
        if log or save or last or self.epoch_iter >= self.iters_per_epoch:
            values = self.flush_stats()
            if log:
                self.log_stats(values)
        if save:
            self.save_checkpoint()

    def log_stats(self, stats: Dict[str, float]) -> None:
        """Average ``stats`` over ranks and write them (metrics.json, TensorBoard, log line)."""
        timing = {k: stats[k] for k in ("time", "data_time") if k in stats}
        values = du.reduce_dict_mean({k: v for k, v in stats.items() if k not in timing})
        values.update(timing)
        rec = {"iteration": self.iter, "epoch": self.epoch, **values,
               "eta_seconds": self.writer.eta_seconds(self.iter, self.max_iter)}
        self.writer.write(rec, step=self.iter)
        self.writer.progress(self.iter, self.max_iter, self.epoch, self.cfg.SOLVER.MAX_EPOCH, values, label=self.cfg.TASK)

    def after_epoch(self, epoch: int) -> None:
        """After each full epoch: the epoch checkpoint every ``TRAIN.CHECKPOINT_PERIOD`` epochs.

        Subclasses add evaluation here (call ``super().after_epoch(epoch)``).
        """
        period = self.cfg.TRAIN.CHECKPOINT_PERIOD
        if (period > 0 and (epoch + 1) % period == 0) or epoch + 1 == self.cfg.SOLVER.MAX_EPOCH:
            self.save_checkpoint(f"checkpoint_epoch_{epoch + 1:05d}")
        self.log_data_failures(epoch)

    def log_data_failures(self, epoch: int) -> None:
        """Report videos that failed to decode so far (they were replaced by other videos)."""
        stats_fn = getattr(getattr(self.train_loader, "dataset", None), "failure_stats", None)
        if not callable(stats_fn):
            return
        stats = stats_fn()
        if stats["failures"]:
            logger.warning(
                "Epoch %d: %d of %d video loads failed (%.2f%%, %d distinct videos), replaced by other "
                "videos; first bad paths: %s. Run tools/check_dataset.py for a full report.",
                epoch + 1, stats["failures"], stats["loads"], 100 * stats["failure_ratio"],
                stats["bad_videos"], stats["bad_paths"],
            )

    def after_train(self) -> None:
        """Called once at the end: says where the checkpoint, logs and TensorBoard files are."""
        if not du.is_main_process():
            return
        out = self.cfg.OUTPUT_DIR
        lines = [
            f"Training finished at iteration {self.iter}.",
            f"  checkpoint:  {self.checkpointer.get_checkpoint_file()}",
            f"  log:         {os.path.join(out, 'log.txt')}",
            f"  metrics:     {os.path.join(out, 'metrics.json')}",
        ]
        if self.cfg.TENSORBOARD.ENABLE:
            tb = self.cfg.TENSORBOARD.LOG_DIR or os.path.join(out, "tensorboard")
            lines.append(f"  tensorboard: {tb}   (tensorboard --logdir {tb})")
        logger.info("\n".join(lines))
