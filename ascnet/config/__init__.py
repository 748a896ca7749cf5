"""Configs: defaults, YAML loading with ``_BASE_``, overrides and validation."""
from .config import ConfigError, get_cfg, load_config, load_yaml_with_base, merge_dict, misplaced_options, parse_opts, save_config, validate_cfg

__all__ = [
    "ConfigError",
    "get_cfg",
    "load_config",
    "load_yaml_with_base",
    "merge_dict",
    "misplaced_options",
    "parse_opts",
    "save_config",
    "validate_cfg",
]
