"""Helpers to run the original ``iotile-cloud`` 0.9.14 from its own virtualenv (tests, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL_VENV = Path(os.environ.get("IOTILE_ORIGINAL_VENV", ROOT / ".cache" / "venv-iotile-cloud-0.9.14"))


def original_python() -> Path:
    """A virtualenv with the original client (made once, then reused)."""
    python = ORIGINAL_VENV / "bin" / "python"
    marker = ORIGINAL_VENV / ".installed"
    if not marker.exists():
        venv.create(ORIGINAL_VENV, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "iotile-cloud==0.9.14"],
            check=True,
        )
        marker.write_text("iotile-cloud==0.9.14\n")
    return python


def run_original(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run(
        [str(original_python()), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
        check=False,
    )


if __name__ == "__main__":
    print(original_python(), file=sys.stderr)
