"""Overrides that shrink the synthetic quickstart to a few seconds of CPU per iteration, shared by
the tests that pretrain through tools/run_net.py (ASCNet's acceptance, the rho-BYOL plugin)."""

TINY_PRETRAIN = [
    "MODEL.BACKBONE.WIDTHS", "[8,16,16,32]", "MODEL.BACKBONE.STEM_WIDTH", "8",
    "MODEL.PROJECTION.HIDDEN_DIM", "32", "MODEL.PROJECTION.OUT_DIM", "16", "MODEL.PREDICTOR.HIDDEN_DIM", "32",
    "DATA.NUM_FRAMES", "8", "DATA.CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
    "DATA.SYNTHETIC.NUM_CLASSES", "4", "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "4",
    "DATA.SYNTHETIC.NUM_FRAMES", "24", "DATA.SYNTHETIC.SIZE", "32",
    "TRAIN.BATCH_SIZE", "4", "MEMORY_BANK.SIZE", "16", "DATA_LOADER.NUM_WORKERS", "0",
    "SOLVER.BASE_BATCH_SIZE", "4", "SOLVER.WARMUP_EPOCHS", "0.5", "SOLVER.MAX_EPOCH", "20",
    "DETERMINISTIC", "True", "LOG_PERIOD", "1", "TENSORBOARD.ENABLE", "False",
    # Training mechanics only: the representation monitor has its own test (test_pretrain_monitor.py).
    "TRAIN.MONITOR_PERIOD", "0",
]
