#!/usr/bin/env python
"""Installable X3D plugin: `pip install -e projects/X3D` makes ascnet import it automatically
(entry point group `ascnet.plugins`), so configs need only `MODEL.BACKBONE.NAME: X3D`."""
from setuptools import find_packages, setup

setup(
    name="ascnet-x3d-plugin",
    version="0.1.0",
    description="X3D backbone for ascnet (pytorchvideo's X3D without its head)",
    packages=find_packages(include=("x3d_plugin", "x3d_plugin.*")),
    install_requires=["ascnet", "pytorchvideo>=0.1.5"],
    entry_points={"ascnet.plugins": ["x3d = x3d_plugin"]},
)
