"""The retrieval visualisation: an HTML page, a contact sheet and animated GIFs of queries and
their nearest gallery videos (``RETRIEVAL.VISUALIZE``; the task is
:func:`ascnet.engine.retrieval.run_retrieval`, the protocol :mod:`ascnet.evaluation.retrieval`).
"""
import html
import os
from typing import List, Optional, Sequence

import numpy as np
import torch
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr

from .retrieval import build_retrieval_dataset


def _to_uint8_frames(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Every frame of the middle view of a (V, C, T, H, W) clip tensor (uint8, or normalised
    float) as (T, H, W, 3) uint8 images."""
    v = clips[clips.shape[0] // 2]  # (C, T, H, W)
    if not v.is_floating_point():
        img = v.permute(1, 2, 3, 0).numpy()
        return (np.repeat(img, 3, axis=3) if img.shape[3] == 1 else img)[..., :3]
    m = torch.tensor(mean, dtype=v.dtype).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=v.dtype).view(-1, 1, 1, 1)
    img = ((v * s + m).clamp(0, 1) * 255).round().byte().permute(1, 2, 3, 0).numpy()
    if img.shape[3] == 1:
        img = np.repeat(img, 3, axis=3)
    return img[..., :3]


def _strip(frames: np.ndarray, n: int = 4) -> np.ndarray:
    """``n`` evenly spaced frames of (T, H, W, 3) side by side: (H, n * W, 3)."""
    idx = np.linspace(0, frames.shape[0] - 1, min(n, frames.shape[0])).round().astype(int)
    return np.concatenate([frames[i] for i in idx], axis=1)


def _class_names(ds) -> Optional[List[str]]:
    names = getattr(ds, "class_names", None) or getattr(ds, "classes", None)
    return list(names) if names else None


def _label_text(ds, label: int) -> str:
    names = _class_names(ds)
    if names and 0 <= label < len(names):
        return f"{label}:{names[label]}"
    return str(label)


def write_visualization(
    cfg: CfgNode,
    out_dir: str,
    neighbors: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    title: str,
    num_queries: int = 8,
    top: int = 5,
    similarities: Optional[torch.Tensor] = None,
) -> str:
    """Write ``index.html``, ``contact_sheet.png`` and one animated GIF per shown video.

    Each row shows a query and its ``top`` nearest gallery videos: an animated GIF of the
    video's middle clip (its motion), the class, the cosine similarity to the query and the
    video's path, framed green (same class) or red. ``num_queries`` queries are sampled with
    ``cfg.RNG_SEED`` (0 = every query); the page states how many are shown. The contact sheet
    shows each video as a strip of four frames of its clip.

    Returns:
        The path of the HTML page.
    """
    from PIL import Image, ImageDraw

    q_ds = build_retrieval_dataset(cfg, cfg.RETRIEVAL.QUERY_SPLIT, 1, 1)
    g_ds = build_retrieval_dataset(cfg, cfg.RETRIEVAL.GALLERY_SPLIT, 1, 1)
    rng = np.random.default_rng(cfg.RNG_SEED)
    n_q = neighbors.shape[0]
    shown = n_q if num_queries <= 0 else min(num_queries, n_q)
    chosen = sorted(rng.choice(n_q, size=shown, replace=False).tolist())
    g_pathmgr.mkdirs(out_dir)
    top = min(top, neighbors.shape[1])
    fps = max(int(cfg.DATA.TARGET_FPS) or 10, 1)

    def save_gif(frames: np.ndarray, name: str) -> None:
        imgs = [Image.fromarray(f) for f in frames]
        with g_pathmgr.open(os.path.join(out_dir, name), "wb") as f:
            imgs[0].save(f, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)

    thumb = 96
    strip_w = 4 * 48
    pad, text_h = 6, 14
    sheet = Image.new("RGB", ((top + 1) * (strip_w + pad) + pad, len(chosen) * (48 + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    rows_html = []

    def cell(frames: np.ndarray, x: int, y: int, colour: str, text: str) -> None:
        st = Image.fromarray(_strip(frames)).resize((strip_w, 48))
        sheet.paste(st, (x, y))
        draw.rectangle([x - 2, y - 2, x + strip_w + 1, y + 48 + 1], outline=colour, width=2)
        draw.text((x, y + 48 + 1), text[:30], fill="black")

    for r, qi in enumerate(chosen):
        q_lab = int(query_labels[qi])
        q_frames = _to_uint8_frames(q_ds[qi]["clips"], cfg.DATA.MEAN, cfg.DATA.STD)
        q_name = f"query{qi:05d}.gif"
        save_gif(q_frames, q_name)
        cells = [
            f'<td class="q"><img src="{q_name}" width="{thumb}"><br>query {qi}<br>'
            f"{html.escape(_label_text(q_ds, q_lab))}<br><small>{html.escape(q_ds.paths[qi])}</small></td>"
        ]
        y = pad + r * (48 + text_h + pad)
        cell(q_frames, pad, y, "blue", f"Q {_label_text(q_ds, q_lab)}")
        for j in range(top):
            gi = int(neighbors[qi, j])
            g_lab = int(gallery_labels[gi])
            ok = g_lab == q_lab
            g_frames = _to_uint8_frames(g_ds[gi]["clips"], cfg.DATA.MEAN, cfg.DATA.STD)
            g_name = f"query{qi:05d}_nn{j + 1}_gallery{gi:05d}.gif"
            save_gif(g_frames, g_name)
            mark = "right" if ok else "wrong"
            sim = f"sim {float(similarities[qi, j]):.3f}" if similarities is not None else ""
            cells.append(
                f'<td class="{mark}"><img src="{g_name}" width="{thumb}"><br>#{j + 1} gallery {gi} {sim}<br>'
                f"{html.escape(_label_text(g_ds, g_lab))} ({mark})<br><small>{html.escape(g_ds.paths[gi])}</small></td>"
            )
            x = pad + (j + 1) * (strip_w + pad)
            cell(g_frames, x, y, "green" if ok else "red", ("+" if ok else "x") + f" {_label_text(g_ds, g_lab)} {sim}")
        rows_html.append("<tr>" + "".join(cells) + "</tr>")
    with g_pathmgr.open(os.path.join(out_dir, "contact_sheet.png"), "wb") as f:
        sheet.save(f, format="PNG")
    sample = "every query" if shown == n_q else f"{shown} of the {n_q} queries, sampled with RNG_SEED={cfg.RNG_SEED}"
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>ascnet retrieval</title>"
        "<style>td{text-align:center;font:12px sans-serif;padding:4px;vertical-align:top}"
        "td.right img{border:4px solid #2a2}td.wrong img{border:4px solid #d22}td.q img{border:4px solid #22d}</style>"
        f"</head><body><h2>Video retrieval: query and top-{top} neighbours</h2><p>{html.escape(title)}</p>"
        f"<p>Shown: {html.escape(sample)} (RETRIEVAL.VIS_NUM_QUERIES, 0 = all). Each video plays its middle clip "
        "(the frames the encoder sees); sim = cosine similarity of the video features to the query's.</p>"
        "<p>Green: same class as the query (right); red: other class (wrong).</p>"
        "<table>" + "\n".join(rows_html) + "</table>"
        '<h3>Contact sheet (4 frames of each clip)</h3><img src="contact_sheet.png"></body></html>\n'
    )
    page_path = os.path.join(out_dir, "index.html")
    with g_pathmgr.open(page_path, "w") as f:
        f.write(page)
    return page_path
