#!/usr/bin/env python
"""Installable rho-BYOL plugin: `pip install -e projects/RhoBYOL` makes ascnet import it
automatically (entry point group `ascnet.plugins`), so configs need only
`MODEL.META_ARCH: RhoBYOL`."""
from setuptools import find_packages, setup

setup(
    name="ascnet-rho-byol-plugin",
    version="0.1.0",
    description="rho-BYOL (Feichtenhofer et al., CVPR 2021) as an ascnet pretraining method",
    packages=find_packages(include=("rho_byol", "rho_byol.*")),
    install_requires=["ascnet"],
    entry_points={"ascnet.plugins": ["rho_byol = rho_byol"]},
)
