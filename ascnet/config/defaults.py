"""The one defaults file of ascnet.

(Past 450 lines on purpose: every key of every component, each with its comment, in one file a
user reads top to bottom; splitting it would scatter the defaults the guide keeps in one place.)

Every key a component reads lives here, with a comment. Keys follow PySlowFast's names where
they exist. Keys marked [D] are choices of ours where the paper is silent (see
``docs/method.md``); keys marked [S] are fixed by the paper's supplementary.

Plugins add their own keys through an ``add_config(cfg)`` function of the plugin module,
called before the YAML is merged (see ``docs/plugins.md``).
"""
from fvcore.common.config import CfgNode

_C = CfgNode()

# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
# What runs: one of the names in ascnet.engine.tasks.TASKS
# (pretrain | finetune | linear | test | retrieval).
_C.TASK = "pretrain"
# Folder for checkpoints, logs, metrics.json, TensorBoard files and the resolved config.yaml.
# Any iopath URI works.
_C.OUTPUT_DIR = "./output"
# Global seed. Each process is seeded with RNG_SEED + rank, each data-loader worker with a
# seed derived from it.
_C.RNG_SEED = 0
# Print a progress line (and write json_stats / metrics.json) every LOG_PERIOD iterations.
_C.LOG_PERIOD = 10
# Processes (one per GPU) per machine. 0 runs on CPU (see NUM_CPU_PROCESSES).
_C.NUM_GPUS = 0
# Processes per machine when NUM_GPUS == 0 (gloo backend). More than one runs the CPU
# distributed path (useful for testing multi-process code without GPUs).
_C.NUM_CPU_PROCESSES = 1
# Number of machines (nodes) and the index of this one.
_C.NUM_SHARDS = 1
_C.SHARD_ID = 0
# torch.distributed init method: "auto" picks a free local port on a single machine, or reads
# MASTER_ADDR/MASTER_PORT when started by torchrun or SLURM; or give "tcp://host:port".
_C.DIST_URL = "auto"
# torch.distributed backend: "auto" = nccl on GPU, gloo on CPU.
_C.DIST_BACKEND = "auto"
# [D] Timeout of the process group's rendezvous and collectives, in seconds: a rank whose peer
# died or hangs raises after at most this long instead of waiting forever (the SLURM job then
# fails with the cause in its log). Long enough for the slowest step (an evaluation, a save).
_C.DIST_TIMEOUT_S = 1800
# Importable module names imported before anything is built, so their registered components
# can be selected by name. Installed packages can also register modules in the
# `ascnet.plugins` entry-point group.
_C.PLUGINS = []
# Use deterministic algorithms (slower; exact-reproducibility tests switch it on).
_C.DETERMINISTIC = False

# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
_C.TRAIN = CfgNode()
# Run the training phase of TASK.
_C.TRAIN.ENABLE = True
# Dataset name in the DATASET registry (Kinetics | UCF101 | HMDB51 | SSv2 | Synthetic).
_C.TRAIN.DATASET = "UCF101"
# Split used for training ("train", "val", "test").
_C.TRAIN.SPLIT = "train"
# Global batch size over all processes (must be divisible by the number of processes).
_C.TRAIN.BATCH_SIZE = 64
# Evaluate every EVAL_PERIOD epochs (downstream tasks); 0 disables periodic evaluation.
_C.TRAIN.EVAL_PERIOD = 0
# [D] Pretraining: representation monitor every MONITOR_PERIOD epochs (0 = off), also before
# the first iteration and after the last epoch: kNN top-1 and retrieval top-1 of the online
# backbone, RETRIEVAL.QUERY_SPLIT -> RETRIEVAL.GALLERY_SPLIT of TEST.DATASET, to metrics.json and
# TensorBoard (monitor_* keys); the first and last are printed side by side at the end.
_C.TRAIN.MONITOR_PERIOD = 0
# Uniformly spaced centre clips per video of the monitor (fewer than RETRIEVAL.NUM_CLIPS: cheap).
_C.TRAIN.MONITOR_NUM_CLIPS = 2
# [D] Motion diagnostics (the names of RETRIEVAL.DIAGNOSTICS) measured with every monitor; [] = none.
_C.TRAIN.MONITOR_DIAGNOSTICS = []
# Save a checkpoint every CHECKPOINT_PERIOD epochs.
_C.TRAIN.CHECKPOINT_PERIOD = 1
# Also save a checkpoint every CHECKPOINT_ITERS iterations (0 = off). Mid-epoch checkpoints
# resume at the next batch of the same epoch ordering.
_C.TRAIN.CHECKPOINT_ITERS = 0
# Keep only the newest N checkpoint files of OUTPUT_DIR/checkpoints, by the iteration stored in
# them, whichever process wrote them (0 = keep all); the one last_checkpoint names is kept.
_C.TRAIN.CHECKPOINT_MAX_KEEP = 0
# Resume from the last checkpoint in OUTPUT_DIR when there is one (a lost pointer or a damaged
# newest file falls back to the newest readable checkpoint; a folder of a run with other
# model-defining keys is refused; see docs/engine.md "Resuming").
_C.TRAIN.AUTO_RESUME = True
# Weights to initialise from (a pretraining or downstream checkpoint); "" = random init.
# Only used when there is nothing to resume.
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# Stop after this many iterations in total (0 = run SOLVER.MAX_EPOCH epochs). For smoke tests.
_C.TRAIN.MAX_ITERS = 0

# ---------------------------------------------------------------------------------------------
# Testing (multi-view classification)
# ---------------------------------------------------------------------------------------------
_C.TEST = CfgNode()
# Run the test phase of TASK (after training for finetune/linear).
_C.TEST.ENABLE = True
# Dataset name in the DATASET registry.
_C.TEST.DATASET = "UCF101"
# Split used for testing.
_C.TEST.SPLIT = "test"
# Global batch size of videos (each video carries all its views).
_C.TEST.BATCH_SIZE = 8
# [D] Temporal clips per video, uniformly spaced.
_C.TEST.NUM_ENSEMBLE_VIEWS = 10
# [D] Spatial crops per clip (1 = centre, 3 = left/centre/right or top/centre/bottom).
_C.TEST.NUM_SPATIAL_CROPS = 3
# Weights to test; "" = the last checkpoint in OUTPUT_DIR.
_C.TEST.CHECKPOINT_FILE_PATH = ""

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
_C.DATA = CfgNode()
# Root of the dataset (annotation files and videos). Any iopath URI.
_C.DATA.PATH_TO_DATA_DIR = ""
# Prefix prepended to every video path read from the annotation files ("" = PATH_TO_DATA_DIR).
_C.DATA.PATH_PREFIX = ""
# Official split number (1, 2, 3) for UCF-101 and HMDB-51.
_C.DATA.SPLIT_ID = 1
# [D] Frames per clip.
_C.DATA.NUM_FRAMES = 16
# [D] Base frame stride at 1x playback speed (speed s uses s * SAMPLING_RATE).
_C.DATA.SAMPLING_RATE = 1
# [D] Resample videos to this frame rate before striding (0 = native frame rate). Never
# upsampled: a video slower than TARGET_FPS keeps its native rate (no repeated frames).
_C.DATA.TARGET_FPS = 25
# [D] Spatial size of training clips.
_C.DATA.CROP_SIZE = 112
# Spatial size of evaluation crops.
_C.DATA.TEST_CROP_SIZE = 112
# Short side the evaluation frames are resized to before cropping (0 = TEST_CROP_SIZE * 8 / 7).
_C.DATA.TEST_SHORT_SIDE = 0
# Per-channel mean and std (for inputs scaled to 0..1).
_C.DATA.MEAN = [0.45, 0.45, 0.45]
_C.DATA.STD = [0.225, 0.225, 0.225]
# Input channels.
_C.DATA.INPUT_CHANNEL_NUM = 3
# How often a failed video is replaced by another before the sample fails.
_C.DATA.NUM_RETRIES = 10
# [D] A video shorter than a clip: "fail" (counted as a failure, another video is used),
# "loop" (indices wrap around) or "clamp" (the last frame repeats). Test mode never fails.
_C.DATA.SHORT_VIDEO_POLICY = "fail"
# The failure-ratio check (MAX_FAILURE_RATIO) starts after this many video loads.
_C.DATA.FAILURE_MIN_ATTEMPTS = 50
# Stop with an error when more than this fraction of the videos seen failed to decode.
_C.DATA.MAX_FAILURE_RATIO = 0.05
# Video file extensions searched when scanning class folders.
_C.DATA.EXTENSIONS = [".mp4", ".avi", ".mkv", ".webm"]
# Clip sampler of each dataset mode, by name in CLIP_SAMPLER_REGISTRY (ascnet/sampling/clip.py;
# a plugin may register its own). PRETRAIN: one clip per playback speed of DATA.SPEEDS [S];
# TRAIN: one random clip at speed 1 (downstream training); TEST: TEST.NUM_ENSEMBLE_VIEWS
# uniformly spaced clips.
_C.DATA.CLIP_SAMPLER = CfgNode()
# [S] Clips per pretraining sample, one per entry: its playback speed (frame-stride multiplier
# of DATA.SAMPLING_RATE), read by the PRETRAIN clip sampler. ASCNet: [1, 2]; rho-BYOL: rho
# entries of 1 (e.g. [1, 1]).
_C.DATA.SPEEDS = [1, 2]
_C.DATA.CLIP_SAMPLER.PRETRAIN = "PlaybackSpeedSampler"
_C.DATA.CLIP_SAMPLER.TRAIN = "RandomClipSampler"
_C.DATA.CLIP_SAMPLER.TEST = "UniformMultiViewSampler"

# Generated dataset (Synthetic): written in the UCF-101 layout.
_C.DATA.SYNTHETIC = CfgNode()
# Generate the dataset under DATA.PATH_TO_DATA_DIR when it is missing.
_C.DATA.SYNTHETIC.AUTO_GENERATE = True
# Number of motion classes.
_C.DATA.SYNTHETIC.NUM_CLASSES = 8
# Videos per class.
_C.DATA.SYNTHETIC.VIDEOS_PER_CLASS = 20
# Frames per video.
_C.DATA.SYNTHETIC.NUM_FRAMES = 48
# Frame height and width (even numbers: H.264 needs them).
_C.DATA.SYNTHETIC.SIZE = 64
# Frames per second written in the container.
_C.DATA.SYNTHETIC.FPS = 25
# Seed of the generator.
_C.DATA.SYNTHETIC.SEED = 0
# Container: ".avi" (MPEG-4 part 2, like UCF-101) or ".mp4" (H.264).
_C.DATA.SYNTHETIC.FORMAT = ".avi"
# Appearance of the videos: "random" (object and background drawn per video) or "fixed" (one
# object and background for all videos, so that only the motion tells videos apart).
_C.DATA.SYNTHETIC.APPEARANCE = "random"
# With APPEARANCE random: the probability that a video's scene (background kind: gradient,
# stripes or noise, with the class's colours and orientation varied per video; object kind:
# digit, shape or texture) is its class's typical one instead of drawn independently of the
# class, as real actions come with their own places and objects; the object's shape, colour and
# size, its position and the motion stay per video. 0: appearance independent of the class.
_C.DATA.SYNTHETIC.CLASS_SCENE_PROB = 0.0
# [D] The classes (docs/data.md, "Presets"): "motion_types" (10 kinds of motion: translations,
# rotation, zoom, orbit, shakes) or "direction_speed" (the motion benchmark: 4 directions x 2
# speeds of a moving digit, appearance never tied to the class; train with AUG.FLIP_PROB 0).
_C.DATA.SYNTHETIC.PRESET = "motion_types"

# ---------------------------------------------------------------------------------------------
# Augmentation [D] (train); one parameter draw per clip, shared by all its frames.
# ---------------------------------------------------------------------------------------------
_C.AUG = CfgNode()
# Apply the training augmentation (off = centre crop only).
_C.AUG.ENABLE = True
# RandomResizedCrop area scale range and aspect ratio range.
_C.AUG.RRC_SCALE = [0.2, 1.0]
_C.AUG.RRC_RATIO = [0.75, 1.3333333333333333]
# Horizontal flip probability (set 0 for datasets whose classes tell left from right).
_C.AUG.FLIP_PROB = 0.5
# Colour jitter strengths (brightness, contrast, saturation, hue) and probability.
_C.AUG.COLOR_JITTER = [0.4, 0.4, 0.4, 0.1]
_C.AUG.COLOR_JITTER_PROB = 0.8
# Grayscale probability.
_C.AUG.GRAYSCALE_PROB = 0.2
# Gaussian blur probability and sigma range (kernel = 10% of the crop size, odd).
_C.AUG.BLUR_PROB = 0.5
_C.AUG.BLUR_SIGMA = [0.1, 2.0]
# Where the augmentation ops run: "device" (the trainer applies them to the whole batch on the
# training device; the loader returns uint8 clips and their drawn parameters) or "loader" (the
# loader workers apply the same ops per sample and return float clips). Same clips either way.
_C.AUG.DEVICE = "device"
# Side of the square frames the loader decodes training clips to (scaled while converting to
# RGB); the crop box is drawn on the video's own size and mapped onto them. 0 = 8/7 of
# DATA.CROP_SIZE (128 for 112 crops). Videos prepared at this short side lose little.
_C.AUG.LOAD_SIZE = 0

# ---------------------------------------------------------------------------------------------
# Data loader
# ---------------------------------------------------------------------------------------------
_C.DATA_LOADER = CfgNode()
# Worker processes per training process.
_C.DATA_LOADER.NUM_WORKERS = 4
# Pin host memory (only used on GPU).
_C.DATA_LOADER.PIN_MEMORY = True
# Keep workers alive between epochs (only used on GPU and with NUM_WORKERS > 0).
_C.DATA_LOADER.PERSISTENT_WORKERS = True

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
_C.MODEL = CfgNode()
# Meta-architecture in the MODEL registry (ASCNet | Classifier).
_C.MODEL.META_ARCH = "ASCNet"
# Classes of the downstream task (101 UCF-101, 51 HMDB-51, 400 Kinetics).
_C.MODEL.NUM_CLASSES = 101

_C.MODEL.BACKBONE = CfgNode()
# [S] Backbone in the BACKBONE registry (R3D18 | R2Plus1D18 | S3DG, or a plugin's).
_C.MODEL.BACKBONE.NAME = "R3D18"
# Output channels of each residual stage (R3D18, R2Plus1D18).
_C.MODEL.BACKBONE.WIDTHS = [64, 128, 256, 512]
# Residual blocks per stage.
_C.MODEL.BACKBONE.DEPTHS = [2, 2, 2, 2]
# Stem output channels.
_C.MODEL.BACKBONE.STEM_WIDTH = 64
# Stem conv kernel [T, H, W]; [] = the paper's (R3D18: 7x7x7; R2Plus1D18: 3x7x7 factorised
# into 1x7x7 + 3x1x1). Padding is kernel // 2.
_C.MODEL.BACKBONE.STEM_KERNEL = []
# Stem conv stride [T, H, W] (R3D18, R2Plus1D18).
_C.MODEL.BACKBONE.STEM_STRIDE = [1, 2, 2]
# R3D18 only: 3x3x3 max-pool with stride 2 after the stem (Table 4).
_C.MODEL.BACKBONE.STEM_POOL = True
# Normalisation layer: "batchnorm" | "syncbatchnorm" (GPU only) | "groupnorm" | "none".
_C.MODEL.BACKBONE.NORM = "batchnorm"
# Width multiplier for S3DG (1.0 = the paper's network).
_C.MODEL.BACKBONE.WIDTH_MULT = 1.0

_C.MODEL.PROJECTION = CfgNode()
# [S] Projection g_a / g_m: Linear(D, HIDDEN_DIM) - BN - ReLU - Linear(HIDDEN_DIM, OUT_DIM).
_C.MODEL.PROJECTION.NAME = "MLPHead"
_C.MODEL.PROJECTION.HIDDEN_DIM = 4096
_C.MODEL.PROJECTION.OUT_DIM = 256

_C.MODEL.PREDICTOR = CfgNode()
# [S] Predictor h_a / h_m: same architecture as the projection, OUT_DIM -> OUT_DIM.
_C.MODEL.PREDICTOR.NAME = "MLPHead"
_C.MODEL.PREDICTOR.HIDDEN_DIM = 4096

# [D] channels_last_3d memory layout for the model's 5-D weights and the input clips (faster
# cuDNN convolutions on recent GPUs); values and checkpoints are the same. Off until a GPU
# measurement (benchmarks/gpu_check.sh) shows the gain. Not model-defining: a run may resume
# with it changed.
_C.MODEL.CHANNELS_LAST = False
# [D] torch.compile every module the model holds under the name "backbone" (ASCNet's online and
# target encoders), in place and before DDP, so state-dict keys, checkpoints and exact resume
# are unchanged. Costs compile time at start (and per new input shape); off until a GPU
# measurement shows the gain. Not model-defining.
_C.MODEL.COMPILE = False

_C.MODEL.CLS_HEAD = CfgNode()
# [S] Classification head (Table 1): Linear(D, NUM_CLASSES) with optional dropout.
_C.MODEL.CLS_HEAD.NAME = "LinearHead"
_C.MODEL.CLS_HEAD.DROPOUT_RATE = 0.0

# ---------------------------------------------------------------------------------------------
# ASCNet (pretraining)
# ---------------------------------------------------------------------------------------------
_C.ASCNET = CfgNode()
# [D] Loss weights: L = ACP_WEIGHT * L_ACP + SCP_WEIGHT * L_SCP, both losses per-clip means.
# ACP_WEIGHT 2.0 is the method's formula, which sums ACP's two directions per video (as BYOL's
# symmetric loss), so per clip ACP counts twice SCP; set 1.0 for equal per-clip weight.
_C.ASCNET.ACP_WEIGHT = 2.0
_C.ASCNET.SCP_WEIGHT = 1.0
# Loss names in the LOSS registry.
_C.ASCNET.ACP_LOSS = "ACPLoss"
_C.ASCNET.SCP_LOSS = "SCPLoss"
# SCP positive sampler in POSITIVE_SAMPLER_REGISTRY: appearance_retrieval (the paper's) or
# random_same_speed (ablation).
_C.ASCNET.POSITIVE_SAMPLER = "appearance_retrieval"
# [D] Below this many bank entries, SCP positives come from the current global batch
# (0 = one global batch, TRAIN.BATCH_SIZE).
_C.ASCNET.BANK_MIN_FILL = 0

# ---------------------------------------------------------------------------------------------
# Momentum teacher (ascnet/modeling/teacher.py): the EMA target of ASCNet and rho-BYOL
# ---------------------------------------------------------------------------------------------
_C.TEACHER = CfgNode()
# [D] Base EMA momentum of the target network; rises to 1 on a cosine schedule.
_C.TEACHER.EMA_BASE = 0.996
# [D] Mode of the target network's BatchNorm layers while training: "train" (BYOL: batch
# statistics of the target's own input) or "eval" (the running statistics, copied from the
# online network after every step).
_C.TEACHER.BN_MODE = "train"

_C.MEMORY_BANK = CfgNode()
# Memory bank in the MEMORY_BANK registry.
_C.MEMORY_BANK.NAME = "RingMemoryBank"
# [S] Entries kept per playback speed (the K most recent).
_C.MEMORY_BANK.SIZE = 32768
# [D] Top-1 search backend: auto | faiss | torch (auto follows docs/benchmarks.md).
_C.MEMORY_BANK.SEARCH = "auto"
# Bank rows scored per chunk by the torch backend (bounds memory).
_C.MEMORY_BANK.CHUNK_SIZE = 8192

# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CfgNode()
# [D] "sgd", "lars" or "adamw" (torch AdamW, default betas; MOMENTUM/NESTEROV unused).
_C.SOLVER.OPTIMIZING_METHOD = "sgd"
# [D] Learning rate for a global batch of BASE_BATCH_SIZE, scaled linearly with TRAIN.BATCH_SIZE.
_C.SOLVER.BASE_LR = 0.1
_C.SOLVER.BASE_BATCH_SIZE = 64
# Learning-rate policy after warm-up: "cosine" or "constant".
_C.SOLVER.LR_POLICY = "cosine"
# Final learning rate of the cosine schedule, as a fraction of the peak.
_C.SOLVER.COSINE_END_LR_RATIO = 0.0
# Linear warm-up length in epochs and its starting fraction of the peak lr.
_C.SOLVER.WARMUP_EPOCHS = 10.0
_C.SOLVER.WARMUP_START_FACTOR = 0.0
# Training length in epochs.
_C.SOLVER.MAX_EPOCH = 200
# [D] SGD momentum and nesterov.
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
# [D] Weight decay; not applied to BN parameters and biases.
_C.SOLVER.WEIGHT_DECAY = 1e-4
# LARS trust coefficient (when OPTIMIZING_METHOD is "lars").
_C.SOLVER.LARS_ETA = 0.001
# Clip the global gradient norm to this value (0 = off).
_C.SOLVER.CLIP_GRAD_NORM = 0.0

# ---------------------------------------------------------------------------------------------
# Mixed precision (CUDA only; ignored on CPU)
# ---------------------------------------------------------------------------------------------
_C.AMP = CfgNode()
_C.AMP.ENABLE = True
# "bfloat16" (no scaler) or "float16" (with a GradScaler).
_C.AMP.DTYPE = "bfloat16"

# ---------------------------------------------------------------------------------------------
# Retrieval evaluation [D] (method.md section 2)
# ---------------------------------------------------------------------------------------------
_C.RETRIEVAL = CfgNode()
# Split whose videos are the queries, and split searched (the gallery).
_C.RETRIEVAL.QUERY_SPLIT = "test"
_C.RETRIEVAL.GALLERY_SPLIT = "train"
# Clips per video (uniformly spaced) and spatial crops per clip.
_C.RETRIEVAL.NUM_CLIPS = 10
_C.RETRIEVAL.NUM_CROPS = 1
# Video feature: mean of the L2-normalised clip features.
_C.RETRIEVAL.POOLING = "mean"
# Subtract the gallery mean feature before normalising.
_C.RETRIEVAL.CENTER = False
# Top-k accuracies reported.
_C.RETRIEVAL.TOPK = [1, 5, 10, 20, 50]
# Search backend: faiss (GPU index when available) or torch.
_C.RETRIEVAL.BACKEND = "faiss"
# Feature cache folder ("" = OUTPUT_DIR/retrieval_cache).
_C.RETRIEVAL.CACHE_DIR = ""
# Videos per batch during feature extraction.
_C.RETRIEVAL.BATCH_SIZE = 8
# Pretraining (or downstream) checkpoint whose backbone is evaluated; "" = random init
# (stated loudly in the output). tools/eval_retrieval.py --checkpoint sets it.
_C.RETRIEVAL.CHECKPOINT_FILE_PATH = ""
# Reuse cached features (keyed by the checkpoint's sha256 and every feature-defining key).
_C.RETRIEVAL.USE_CACHE = True
# [D] Weighted kNN classification beside retrieval (InstDisc): the k nearest gallery videos
# vote with weight exp(cosine / KNN_TEMPERATURE); top-1 for each k ([] = off).
_C.RETRIEVAL.KNN_K = [20, 200]
_C.RETRIEVAL.KNN_TEMPERATURE = 0.07
# Write an HTML page and a PNG contact sheet of sampled queries and their top-5 neighbours.
_C.RETRIEVAL.VISUALIZE = False
# [D] Motion diagnostics reported beside the retrieval figures (docs/evaluation.md, "Motion
# diagnostics"; ascnet/evaluation/diagnostics.py): "static_bias" (retrieval and kNN top-1 with
# each query clip's frames shuffled in time, and with one frame repeated: the drops) and "speed"
# (a linear read-out of the playback speed of DATA.SPEEDS from frozen clip features, fit on
# gallery videos, scored on query videos). [] = none (they cost one or two more extractions).
_C.RETRIEVAL.DIAGNOSTICS = []
# [D] Speed probe: clips per video at each speed (views of DATA.NUM_FRAMES x max(DATA.SPEEDS) frames).
_C.RETRIEVAL.SPEED_PROBE_CLIPS = 4
# Queries shown by VISUALIZE (sampled with RNG_SEED).
_C.RETRIEVAL.VIS_NUM_QUERIES = 8

# ---------------------------------------------------------------------------------------------
# Downstream recipes [S]/[D]: TASK linear / finetune copy these into SOLVER.* before training
# (so each task has its own defaults); SOLVER.* values of those four keys are then ignored.
# ---------------------------------------------------------------------------------------------
_C.LINEAR = CfgNode()
# [S] Linear protocol: initial lr 0.1 (for SOLVER.BASE_BATCH_SIZE, scaled linearly), SGD,
# weight decay 0, 100 epochs. [D] cosine decay (SOLVER.LR_POLICY), no warm-up.
_C.LINEAR.BASE_LR = 0.1
_C.LINEAR.WEIGHT_DECAY = 0.0
_C.LINEAR.MAX_EPOCH = 100
_C.LINEAR.WARMUP_EPOCHS = 0.0
# [D] Standardise the frozen features before the linear layer: "bn" = BatchNorm1d without
# affine parameters (statistics of the training set; a fixed affine map at test time, so the
# classifier stays linear in the features), "none" = the raw features. Raw features of a
# pretrained encoder can be large (norm ~10-30), and lr 0.1 then diverges; "bn" makes the
# recipe's lr independent of the encoder's feature scale.
_C.LINEAR.FEATURE_NORM = "bn"
# [D] "sgd": the recipe above, SGD over decoded, augmented clips (the paper's protocol).
# "cached": frozen features of deterministic views extracted once (cached, keyed by the
# checkpoint's sha256), then a multinomial logistic regression fitted to convergence by L-BFGS
# on the device, L2 chosen among CACHED_L2 on held-out training videos; seconds instead of
# minutes; the same test (TEST.* views, softmax averaged) and test_results_split<k>.json.
_C.LINEAR.MODE = "sgd"
# Cached mode: uniformly spaced clips x spatial crops of each training video (test videos use
# TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS).
_C.LINEAR.CACHED_TRAIN_CLIPS = 10
_C.LINEAR.CACHED_TRAIN_CROPS = 3
# Cached mode: L2 penalties swept (objective: mean cross-entropy + L2 / 2 * ||W||^2 on the
# standardised features), the share of each class's training videos held out to choose one,
# and the L-BFGS iterations per fit.
_C.LINEAR.CACHED_L2 = [1e-4, 1e-3, 1e-2, 1e-1]
_C.LINEAR.CACHED_VAL_FRACTION = 0.2
_C.LINEAR.CACHED_MAX_ITER = 500
# Cached mode: feature cache folder ("" = OUTPUT_DIR/linear_cache) and whether to use it.
_C.LINEAR.CACHE_DIR = ""
_C.LINEAR.USE_CACHE = True

_C.FINETUNE = CfgNode()
# [D] Fine-tuning of all layers: SGD lr 0.1 (for SOLVER.BASE_BATCH_SIZE, scaled linearly),
# cosine decay, 30 epochs (R18), weight decay 1e-4, one warm-up epoch.
_C.FINETUNE.BASE_LR = 0.1
_C.FINETUNE.WEIGHT_DECAY = 1e-4
_C.FINETUNE.MAX_EPOCH = 30
_C.FINETUNE.WARMUP_EPOCHS = 1.0

# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------
_C.TENSORBOARD = CfgNode()
# Write TensorBoard scalars under OUTPUT_DIR/tensorboard (or LOG_DIR).
_C.TENSORBOARD.ENABLE = True
_C.TENSORBOARD.LOG_DIR = ""

