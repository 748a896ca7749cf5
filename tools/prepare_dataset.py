#!/usr/bin/env python
"""Transcode a video dataset tree into a training copy that is cheap to decode.

Examples::

    python tools/prepare_dataset.py --dataset Kinetics --src /data/kinetics400 \\
        --dst /scratch/k400_128 --short-side 128 --fps 25 --workers 32
    python tools/prepare_dataset.py --dataset UCF101 --src /data/ucf101 --dst /scratch/ucf_128 --gop 16
    python tools/prepare_dataset.py --dataset SSv2 --src /data/ssv2 --dst /scratch/ssv2_h264 --gop 12

The copy keeps the layout: every video is written under the same relative path (H.264 with
libx264 through PyAV, no system ffmpeg needed; ``.avi`` files stay AVI with MPEG-4 part 2, since
H.264 in AVI has no presentation times; ``.webm`` becomes ``.mkv``, which Kinetics finds by its
clip name and SSv2 by its id), frames scaled so that the short side is ``--short-side`` (never upscaled;
even sizes), frame rate lowered to ``--fps`` (never raised), a key frame every ``--gop``
frames, quality ``--crf``, audio dropped. Every other file (annotations, split lists,
``classInd.txt``, ...) is copied, so the same config loads the copy with only
``DATA.PATH_TO_DATA_DIR`` changed.

Parallel (``--workers`` processes, one encoder thread each) with a progress bar and ETA.
Resumable: a finished video is skipped on the next run; each output is written under a
temporary name (``.<name>.part<ext>``) and renamed when complete, so a killed run never leaves
a half file that counts as done (stale temporary files are removed when a run starts).

Bad inputs (missing: listed in the annotations but absent; empty; truncated; undecodable) are
reported by path with the reason, on the console and in ``<dst>/prepare_report.json``; they
never stop the run. Exit status 0 (1 only when an output could not be written).

Why smaller videos: on one core, decoding a 16-frame clip of 340x256 H.264 at the default GOP
costs several times a 128p clip with a short GOP (docs/benchmarks.md "Data throughput").
"""
import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

import av
from tqdm import tqdm

DATASETS = ("Kinetics", "UCF101", "HMDB51", "SSv2")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp")
REPORT = "prepare_report.json"
# A decode that stops before this fraction of the frames the header promises is a truncated file
# (the same threshold as ascnet/data/decoder.py).
MIN_DECODED = 0.9
# MPEG-4 part 2 (AVI outputs) bit rate at --crf 23, in bits per pixel and frame.
MPEG4_BITS_PER_PIXEL = 1.0


class BadVideo(Exception):
    """An input video that cannot be transcoded; the message is the reason."""


def output_rel(rel: str) -> str:
    """Relative output path of a video: same path; ``.webm`` (no H.264 in WebM) -> ``.mkv``."""
    stem, ext = os.path.splitext(rel)
    return stem + (".mkv" if ext.lower() == ".webm" else ext)


def temp_path(path: str) -> str:
    d, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    return os.path.join(d, f".{stem}.part{ext}")  # keeps the extension: PyAV picks the container by it


def _is_temp(name: str) -> bool:
    return name.startswith(".") and ".part." in name


def out_size(h: int, w: int, short_side: int) -> Tuple[int, int]:
    """(H, W) with the short side at ``short_side`` (no upscaling), both even."""
    s = min(h, w)
    scale = min(1.0, short_side / s) if short_side > 0 else 1.0
    return max(2, int(round(h * scale / 2)) * 2), max(2, int(round(w * scale / 2)) * 2)


def transcode(src: str, dst: str, short_side: int, fps: float, gop: int, crf: int) -> Dict[str, object]:
    """Transcode one video to ``dst`` (through its temporary name). Raises :class:`BadVideo`."""
    if not os.path.exists(src):
        raise BadVideo("missing: listed in the annotations but not found")
    if os.path.getsize(src) == 0:
        raise BadVideo("empty file (0 bytes)")
    try:
        inp = av.open(src, metadata_errors="ignore")
    except Exception as e:  # FFmpeg raises many error types
        raise BadVideo(f"undecodable: cannot open ({e})") from e
    tmp = temp_path(dst)
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    written = decoded = 0
    try:
        if not inp.streams.video:
            raise BadVideo("undecodable: no video stream")
        ist = inp.streams.video[0]
        ist.thread_type = "AUTO"
        rate = ist.average_rate or ist.guessed_rate or ist.base_rate
        src_fps = float(rate) if rate else 0.0
        if src_fps <= 0:
            raise BadVideo("undecodable: no frame rate")
        promised = int(ist.frames or 0)
        if promised <= 0 and ist.duration is not None and ist.time_base is not None:
            promised = int(float(ist.duration * ist.time_base) * src_fps)
        out_fps = Fraction(src_fps).limit_denominator(1001) if fps <= 0 or fps >= src_fps else Fraction(fps).limit_denominator(1001)
        start = ist.start_time or 0
        tb = float(ist.time_base) if ist.time_base else 1.0 / src_fps
        with av.open(tmp, mode="w") as out:
            ost = None
            next_t = 0.0  # time of the next output frame (s)
            step = 1.0 / float(out_fps)
            try:
                for k, frame in enumerate(inp.decode(ist)):
                    decoded += 1
                    t = (frame.pts - start) * tb if frame.pts is not None else k / src_fps
                    if ost is None:
                        h, w = out_size(frame.height, frame.width, short_side)
                        avi = dst.lower().endswith(".avi")
                        ost = out.add_stream("mpeg4" if avi else "libx264", rate=out_fps)
                        ost.width, ost.height, ost.pix_fmt = w, h, "yuv420p"
                        ost.codec_context.gop_size = int(gop)
                        if avi:
                            # H.264 in AVI decodes with timestamps shifted by one frame (AVI stores
                            # no presentation times); AVI keeps MPEG-4 part 2, UCF-101's own codec.
                            ost.bit_rate = int(MPEG4_BITS_PER_PIXEL * w * h * float(out_fps) * 23 / max(crf, 1))
                        else:
                            # No B-frames: decoding without reordering is a little cheaper.
                            ost.options = {"crf": str(int(crf)), "preset": "veryfast", "bf": "0"}
                        ost.thread_count = 1  # the pool is the parallelism
                    # Frame-rate conversion: the source frame on screen at each output time.
                    while next_t < t + 1.0 / src_fps - 1e-6:
                        img = frame.reformat(width=ost.width, height=ost.height, format="yuv420p", threads=1)
                        img.pts, img.time_base = written, Fraction(1, 1) / out_fps
                        for packet in ost.encode(img):
                            out.mux(packet)
                        written += 1
                        next_t = written * step
            except Exception as e:
                if decoded == 0:
                    raise BadVideo(f"undecodable: {e}") from e
                raise BadVideo(f"truncated or corrupt: decoding failed after {decoded} of {promised or '?'} frames ({e})") from e
            if ost is None:
                raise BadVideo("undecodable: no decodable frames")
            for packet in ost.encode():
                out.mux(packet)
        if promised and decoded < MIN_DECODED * promised:
            raise BadVideo(f"truncated: {decoded} of {promised} frames decodable")
        os.replace(tmp, dst)  # only a complete file gets the final name
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        inp.close()
    return {"frames_in": decoded, "frames_out": written, "fps_out": float(out_fps)}


def _job(args: Tuple[str, str, str, int, float, int, int]) -> Tuple[str, str, Optional[str], Dict]:
    rel, src, dst, short_side, fps, gop, crf = args
    t = time.process_time()
    try:
        info = transcode(src, dst, short_side, fps, gop, crf)
    except BadVideo as e:
        return rel, "bad", str(e), {}
    except Exception as e:  # an output that could not be written (disk full, permissions)
        return rel, "error", f"{type(e).__name__}: {e}", {}
    info["cpu_s"] = round(time.process_time() - t, 3)
    return rel, "done", None, info


def scan(src: str) -> Tuple[List[str], List[str]]:
    """(relative video paths, relative other files) under ``src``, sorted."""
    videos, others = [], []
    for d, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(d, f), src)
            (videos if f.lower().endswith(VIDEO_EXTS) else others).append(rel)
    return videos, others


def annotated_videos(dataset: str, src: str) -> List[str]:
    """Relative paths (or Kinetics clip names) the annotation files list, for the missing check.

    Uses the dataset classes' own parsing: every split (and split id) they can read.
    """
    from ascnet.config import get_cfg
    from ascnet.data import DATASET_REGISTRY
    from ascnet.data.datasets import kinetics

    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = src
    listed = set()
    if dataset == "Kinetics":
        for split, names in kinetics._SPLIT_ALIASES.items():
            for n in names:
                p = os.path.join(src, "annotations", f"{n}.csv")
                if os.path.exists(p):
                    text = open(p).read()
                    for r in kinetics._official_rows(text):
                        listed.add(("stem", n, kinetics._clip_stem(r)))
    cls = DATASET_REGISTRY.get(dataset)
    for split_id in ((1, 2, 3) if dataset in ("UCF101", "HMDB51") else (1,)):  # the others have one split
        cfg.DATA.SPLIT_ID = split_id
        for split in ("train", "val", "test"):
            try:
                ds = cls.__new__(cls)
                ds.cfg, ds.split, ds.mode = cfg, split, "test"
                paths, _, _ = ds._load_index()
            except Exception:  # this split or split id does not exist in the tree
                continue
            for p in paths:
                listed.add(("path", os.path.relpath(p, src)))
    return sorted(listed)


def missing_videos(dataset: str, src: str, videos: List[str]) -> List[str]:
    have = set(videos)
    stems = {}
    for v in videos:
        parts = v.split(os.sep)
        stems.setdefault((parts[0], os.path.splitext(parts[-1])[0]), v)
    out = []
    for item in annotated_videos(dataset, src):
        if item[0] == "path" and item[1] not in have:
            out.append(item[1])
        elif item[0] == "stem" and (item[1], item[2]) not in stems:
            out.append(f"{item[1]}/{item[2]}.*")
    return sorted(set(out))


def copy_file(src: str, dst: str) -> bool:
    """Copy through a temporary name; skip when ``dst`` has the same size. True when copied."""
    if os.path.exists(dst) and os.path.getsize(dst) == os.path.getsize(src):
        return False
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    tmp = temp_path(dst)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=DATASETS, help="layout of --src")
    p.add_argument("--src", required=True, help="the dataset in its official layout")
    p.add_argument("--dst", required=True, help="where the training copy goes (created)")
    p.add_argument("--short-side", type=int, default=128, help="short side of the output frames (0: keep)")
    p.add_argument("--fps", type=float, default=25, help="output frame rate, never above the source's (0: keep)")
    p.add_argument("--gop", type=int, default=16, help="frames between key frames")
    p.add_argument("--crf", type=int, default=23, help="libx264 quality (lower = better, larger)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Real paths: a symlinked --dst (or --src) must not hide that the copy would land in the source.
    src, dst = os.path.realpath(args.src), os.path.realpath(args.dst)
    if not os.path.isdir(src):
        print(f"--src {src!r} is not a folder. Give the dataset's root folder.", file=sys.stderr)
        return 2
    if os.path.commonpath([src, dst]) == src:
        print(f"--dst {args.dst!r} ({dst}) is inside --src {args.src!r} ({src}) once links are resolved; choose a "
              "folder outside the source tree.", file=sys.stderr)
        return 2
    os.makedirs(dst, exist_ok=True)
    for d, _, files in os.walk(dst):  # a killed run's temporary files never count as done
        for f in files:
            if _is_temp(f):
                os.remove(os.path.join(d, f))
    t0 = time.time()
    videos, others = scan(src)
    copied = sum(copy_file(os.path.join(src, r), os.path.join(dst, r)) for r in others)
    missing = missing_videos(args.dataset, src, videos)
    jobs, skipped = [], 0
    for rel in videos:
        out = os.path.join(dst, output_rel(rel))
        if os.path.exists(out):
            skipped += 1
            continue
        jobs.append((rel, os.path.join(src, rel), out, args.short_side, args.fps, args.gop, args.crf))
    bad = [{"path": os.path.join(src, m), "reason": "missing: listed in the annotation files but not found"} for m in missing]
    errors, done, cpu = [], 0, 0.0
    bar = tqdm(total=len(videos), initial=skipped, unit="video", desc="prepare", disable=args.no_progress,
               dynamic_ncols=True)
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(_job, j) for j in jobs]
        for fut in as_completed(futures):
            rel, status, reason, info = fut.result()
            if status == "done":
                done += 1
                cpu += info["cpu_s"]
            else:
                entry = {"path": os.path.join(src, rel), "reason": reason}
                (bad if status == "bad" else errors).append(entry)
                tqdm.write(f"{'bad video' if status == 'bad' else 'ERROR'} {entry['path']}: {reason}", file=sys.stderr)
            bar.update(1)
    bar.close()
    for m in bad[: len(missing)]:
        print(f"bad video {m['path']}: {m['reason']}", file=sys.stderr)
    report = {
        "dataset": args.dataset, "src": src, "dst": dst,
        "settings": {"short_side": args.short_side, "fps": args.fps, "gop": args.gop, "crf": args.crf, "codec": "libx264"},
        "videos": len(videos), "transcoded": done, "skipped_finished": skipped, "files_copied": copied,
        "bad": sorted(bad, key=lambda b: b["path"]), "errors": errors,
        "encode_cpu_s": round(cpu, 2), "wall_s": round(time.time() - t0, 2),
    }
    tmp = temp_path(os.path.join(dst, REPORT))
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, os.path.join(dst, REPORT))
    print(
        f"{done} videos transcoded, {skipped} already done, {len(bad)} bad ({len(missing)} missing), "
        f"{len(errors)} write errors, {copied} other files copied -> {dst} (report: {os.path.join(dst, REPORT)})"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
