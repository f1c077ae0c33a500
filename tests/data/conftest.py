"""Fixtures of the data-layer tests: tiny FOA files and DCASE folders written in code."""

from pathlib import Path

import numpy as np
import pytest
import soundfile


def write_foa(path, seconds=0.5, sr=24000, channels=4, seed=0):
    """A short noise file (`channels` channels, 16-bit PCM) at `path`; returns the float data as written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (0.1 * np.random.default_rng(seed).standard_normal((int(seconds * sr), channels))).astype(np.float32)
    soundfile.write(str(path), data, sr, subtype="PCM_16")
    return data


def write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def foa_writer():
    return write_foa


@pytest.fixture
def text_writer():
    return write_text


@pytest.fixture
def starss_dir(tmp_path):
    """A STARSS23-layout folder: 2 train (sony, tau), 1 test recording of 1 s each, and 1 unlabeled eval file."""
    root = tmp_path / "starss23"
    files = {
        "dev-train-sony/fold3_room21_mix001": "0,0,0,30,10,150\n1,0,0,32,10,150\n1,0,1,-90,0,200\n",
        "dev-train-tau/fold3_room4_mix002": "3,12,0,180,-20,90\n",
        "dev-test-sony/fold4_room23_mix001": "5,6,0,-45,5,300\n",
    }
    for i, (key, csv) in enumerate(files.items()):
        write_foa(root / "foa_dev" / f"{key}.wav", seconds=1.0, seed=i)
        write_text(root / "metadata_dev" / f"{key}.csv", csv)
    write_foa(root / "foa_eval" / "mix001.wav", seconds=0.5, seed=9)
    return root
