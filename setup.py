"""at2seld: pretrained audio-tagging backbones turned into FOA sound event localization and detection."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="at2seld",
    version="0.1.0",
    description=(
        "AT2SELD: pretrained general-purpose audio-tagging models (AST, BEATs) as spatially grounded "
        "Sound Event Localization and Detection systems for First-Order Ambisonics"
    ),
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["at2seld", "at2seld.*"]),
    include_package_data=True,
    package_data={"at2seld": ["**/*.json", "**/*.yaml", "**/*.md"]},
    install_requires=[
        # Users keep their own (CUDA) torch; the Makefile installs the CPU build first on this machine.
        "torch>=2.4",
        "transformers>=5",
        "datasets>=4",
        "huggingface-hub",
        "accelerate",
        "evaluate",
        "safetensors",
        "soundfile",
        "numpy",
        "scipy",
        "soxr",
        "matplotlib",
        "tensorboard",  # default report_to of at2seld-train
        "optuna>=4",  # at2seld-nas: studies in an RDB storage (SQLite / PostgreSQL / MySQL)
        "pyyaml",  # search-space and study files
    ],
    extras_require={
        "dev": ["pytest", "hypothesis", "ruff"],
        "bench": ["librosa"],
    },
    entry_points={
        "console_scripts": [
            # one line per command; each issue adds its own
            "at2seld-synthesize=at2seld.commands:synthesize",
            "at2seld-evaluate=at2seld.evaluation.cli:main",
            "at2seld-report=at2seld.commands:report",
            "at2seld-infer=at2seld.inference:main",
            "at2seld-train=at2seld.commands:train",
            "at2seld-nas=at2seld.commands:nas",
            "at2seld-study=at2seld.commands:study",
        ]
    },
)
