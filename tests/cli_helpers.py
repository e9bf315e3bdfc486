"""Running the `emoedge` command as a user would, in the foreground (`run_cli`) or in the background (`Background`:
start it, wait until its outputs show something, signal it, read what it wrote), and checking its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def emoedge_command(*args: str) -> list[str]:
    """`python -m emoedge ARGS` with this interpreter."""
    return [sys.executable, "-m", "emoedge", *args]


def user_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a command runs in: this one, Python unbuffered (output shows as it is written), and `extra`."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m emoedge ARGS` as a user would, capturing its output."""
    return subprocess.run(
        emoedge_command(*args), cwd=cwd or REPO, env=user_env(), capture_output=True, text=True, timeout=timeout
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


def count_lines(path: Path) -> int:
    """Whole lines in a file another process is writing (0 while it does not exist)."""
    return path.read_text().count("\n") if path.exists() else 0


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 120.0, *, process: Background | None = None
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` s, or as soon as `process` has ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.returncode is not None:
            pytest.fail(f"the command ended (status {process.returncode}) before {what}: {process.stderr[-2000:]}")
        if time.monotonic() > deadline:
            tail = f": {process.stderr[-2000:]}" if process is not None else ""
            pytest.fail(f"no {what} after {timeout:g} s{tail}")
        time.sleep(0.02)


class Background:
    """A command started in the background as a user would start it (in the repository, `user_env`), its stdout and
    stderr appended to `logs`/stdout.txt and stderr.txt, readable while it runs. As a context manager it is stopped
    on leaving if it still runs.

    `emoedge` commands: `Background(emoedge_command("run", ...), folder)`; scripts: `[sys.executable, "-c", CODE]`.
    """

    def __init__(
        self, argv: Sequence[str], logs: Path, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / "stdout.txt", logs / "stderr.txt"
        # A command restarted with the same logs appends to them; its own output starts where the last one's ended.
        self._start = {p: p.stat().st_size if p.exists() else 0 for p in (self.stdout_path, self.stderr_path)}
        with self.stdout_path.open("a") as stdout, self.stderr_path.open("a") as stderr:
            self.process = subprocess.Popen(
                list(argv), cwd=cwd or REPO, env=user_env(env), stdout=stdout, stderr=stderr, text=True
            )

    def _read(self, path: Path) -> str:
        with path.open("rb") as file:
            file.seek(self._start[path])
            return file.read().decode(errors="replace")

    @property
    def stdout(self) -> str:
        """What the command wrote to stdout so far."""
        return self._read(self.stdout_path)

    @property
    def stderr(self) -> str:
        """What the command wrote to stderr so far."""
        return self._read(self.stderr_path)

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.process.poll()

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        """Until `condition` holds; fails the test if the command ends first or after `timeout` s."""
        wait_until(condition, what, timeout, process=self)

    def send(self, *signums: int, gap: float = 0.05) -> float:
        """Send `signums`, `gap` s apart; returns when the first was sent (time.monotonic)."""
        sent = time.monotonic()
        for i, signum in enumerate(signums):
            if i:
                time.sleep(gap)
            self.process.send_signal(signum)
        return sent

    def wait(self, timeout: float = 60.0) -> int:
        """The exit status; fails the test if the command still runs `timeout` s later."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout:g} s later: {self.stderr[-2000:]}")

    def interrupt(self, *signums: int, gap: float = 0.05, timeout: float = 60.0) -> float:
        """Send `signums` (`send`) and wait for the exit (`wait`); returns the seconds from the first to the exit."""
        sent = self.send(*signums, gap=gap)
        self.wait(timeout)
        return time.monotonic() - sent

    def stop(self) -> None:
        """SIGTERM if it still runs, SIGKILL 10 s later if it still runs then."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
