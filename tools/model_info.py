#!/usr/bin/env python
"""Parameter count and FLOPs of the configured backbone (and the whole model, when it builds).

Examples::

    # the default backbone (R3D18) at DATA.NUM_FRAMES x DATA.CROP_SIZE (16 x 112)
    python tools/model_info.py
    # S3D-G at 16 x 224, and the same network at 112 px
    python tools/model_info.py --cfg configs/Kinetics/ASCNet_S3DG_16x224.yaml
    python tools/model_info.py --cfg configs/Kinetics/ASCNet_S3DG_16x224.yaml DATA.CROP_SIZE 112
    # a plugin backbone
    PYTHONPATH=projects/X3D python tools/model_info.py --cfg projects/X3D/configs/ASCNet_X3D_XS_quickstart.yaml

FLOPs are counted by fvcore's ``FlopCountAnalysis`` on one clip (batch 1), in fvcore's
convention: one multiply-add = one FLOP (the convention of the video papers' GFLOPs columns).
"""
import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Any, Dict

import torch
from fvcore.nn import FlopCountAnalysis

from ascnet.engine.plugins import load_config
from ascnet.modeling import build_backbone, build_model

logger = logging.getLogger("ascnet.model_info")


def count_parameters(module: torch.nn.Module) -> Dict[str, int]:
    """Total and trainable parameter counts of ``module``."""
    params = list(module.parameters())
    return {
        "params": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def backbone_flops(backbone: torch.nn.Module, num_frames: int, crop_size: int, channels: int = 3) -> int:
    """fvcore FLOPs (multiply-adds) of one forward of a (1, C, T, S, S) clip, in eval mode."""
    was_training = backbone.training
    backbone.eval()
    x = torch.zeros(1, channels, num_frames, crop_size, crop_size)
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(backbone, (x,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return int(analysis.total())
    finally:
        backbone.train(was_training)


def _import_meta_archs() -> None:
    """Import every module of ascnet.modeling.meta_arch so its models are registered."""
    import ascnet.modeling.meta_arch as meta_arch

    for mod in pkgutil.iter_modules(meta_arch.__path__):
        importlib.import_module(f"{meta_arch.__name__}.{mod.name}")


def model_info(cfg) -> Dict[str, Any]:
    """Sizes of the configured backbone and (when buildable) of the whole model.

    Returns:
        dict with ``backbone`` (name), ``out_dim``, ``input`` (T, S), ``backbone_params``,
        ``backbone_gflops`` and, when ``build_model(cfg)`` works, ``model_params``,
        ``model_trainable`` and ``model_parts`` ({child name: params}); else ``model_error``.
    """
    backbone = build_backbone(cfg)
    t, s = int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.CROP_SIZE)
    info: Dict[str, Any] = {
        "backbone": cfg.MODEL.BACKBONE.NAME,
        "out_dim": backbone.out_dim,
        "input": (t, s),
        "backbone_params": count_parameters(backbone)["params"],
        "backbone_gflops": backbone_flops(backbone, t, s, cfg.DATA.INPUT_CHANNEL_NUM) / 1e9,
    }
    try:
        _import_meta_archs()
        model = build_model(cfg)
    except Exception as e:  # the meta-architecture may need data or plugins: report, don't fail
        info["model_error"] = f"{type(e).__name__}: {e}"
        return info
    counts = count_parameters(model)
    info["model"] = cfg.MODEL.META_ARCH
    info["model_params"] = counts["params"]
    info["model_trainable"] = counts["trainable"]
    info["model_parts"] = {name: count_parameters(child)["params"] for name, child in model.named_children()}
    return info


def format_info(info: Dict[str, Any]) -> str:
    """Human-readable lines for :func:`model_info`'s result."""
    t, s = info["input"]
    lines = [
        f"backbone        {info['backbone']} (feature dim {info['out_dim']})",
        f"input           1 x 3 x {t} x {s} x {s}",
        f"backbone params {info['backbone_params']:,} ({info['backbone_params'] / 1e6:.2f} M)",
        f"backbone GFLOPs {info['backbone_gflops']:.2f} (fvcore, multiply-adds, one clip)",
    ]
    if "model_params" in info:
        lines.append(
            f"model params    {info['model_params']:,} ({info['model_params'] / 1e6:.2f} M) for "
            f"{info['model']}, {info['model_trainable']:,} trainable"
        )
        for name, n in info["model_parts"].items():
            lines.append(f"  {name:<14}{n:,}")
    else:
        lines.append(f"model           not built ({info['model_error']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cfg", default=None, help="YAML config (default: the built-in defaults)")
    parser.add_argument("--dry-run", action="store_true", help="load the config and exit; builds no network")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. DATA.CROP_SIZE 224")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.cfg, args.opts)
    if args.dry_run:
        print(f"# dry run: would count backbone {cfg.MODEL.BACKBONE.NAME} and model {cfg.MODEL.META_ARCH} at "
              f"{cfg.DATA.NUM_FRAMES} x {cfg.DATA.CROP_SIZE} px. Nothing was built.")
        return 0
    print(format_info(model_info(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
