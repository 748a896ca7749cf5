"""Config keys of the X3D plugin (``MODEL.X3D.*``)."""
from fvcore.common.config import CfgNode


def add_x3d_config(cfg: CfgNode) -> None:
    """Add the ``MODEL.X3D`` keys to ``cfg`` (in place; a no-op when they are already there).

    Called by ascnet's ``load_config`` (as ``x3d_plugin.add_config``) before the YAML is merged,
    so a YAML may set any of these keys.
    """
    if "X3D" in cfg.MODEL:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    _x = CfgNode()
    # Channel multiplier gamma_w of X3D (2.0 for X3D-XS/S/M).
    _x.WIDTH_FACTOR = 2.0
    # Depth multiplier gamma_d: stage depths are ceil([1, 2, 5, 3] * DEPTH_FACTOR) (2.2 for XS/S/M).
    _x.DEPTH_FACTOR = 2.2
    # Inner width of each bottleneck, as a multiple of its output width (2.25 in X3D).
    _x.BOTTLENECK_FACTOR = 2.25
    # Stem base width before WIDTH_FACTOR (12 in X3D, i.e. 24 channels at WIDTH_FACTOR 2.0).
    _x.STEM_DIM_IN = 12
    # Squeeze-excitation ratio of every other block (0 = no SE).
    _x.SE_RATIO = 0.0625
    # Keep X3D's conv5 (1x1x1 conv to BOTTLENECK_FACTOR x the last stage's width, BN, ReLU) in
    # the backbone; the features are then 432-d at XS instead of 192-d.
    _x.CONV5 = True
    cfg.MODEL.X3D = _x
    if was_frozen:
        cfg.freeze()
