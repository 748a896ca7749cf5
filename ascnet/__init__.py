"""ascnet: self-supervised video representation learning with Appearance-Speed Consistency."""
__version__ = "0.1.0"
