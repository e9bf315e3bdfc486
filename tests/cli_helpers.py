"""Running the `emoedge` command as a user would, and checking its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m emoedge ARGS` as a user would, capturing its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "emoedge", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_many(argvs: Sequence[Sequence[str]], workers: int = 4) -> list[subprocess.CompletedProcess]:
    """`run_cli` for each argument list, a few at a time: each start-up alone is ~2 s of importing torch."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda argv: run_cli(*argv), argvs))


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, one line on stderr starting 'emoedge: error:', no traceback, naming what was wrong."""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("emoedge: warning:")]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("emoedge: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
