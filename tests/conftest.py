import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests never reach the network: every model comes from an installed package or is built here.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]


def run_job(script: str, *overrides: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    """Run a jobs/ entry point the way a user does, in a fresh process."""
    cmd = [sys.executable, str(ROOT / "jobs" / script), *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def glove_cfg():
    from embcompare.models import load_model_config

    return load_model_config("glove_6b_50d")


@pytest.fixture(scope="session")
def minilm_cfg():
    from embcompare.models import load_model_config

    return load_model_config("sbert_minilm")
