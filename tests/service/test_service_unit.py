"""The shipped systemd unit (deploy/emoedge.service): systemd's own checker accepts it, it asks for what the run
gives (Type=notify, a watchdog, SIGHUP as reload, 130 as a clean stop), and its command line is one emoedge parses."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]

from emoedge.cli import build_parser

UNIT = REPO / "deploy" / "emoedge.service"
SHIPPED_EMOEDGE = "/opt/emoedge/.venv/bin/emoedge"


def _service_section() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text().replace("\\\n", " "))
    return dict(parser["Service"])


def test_the_unit_asks_for_what_the_run_gives() -> None:
    service = _service_section()
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure" and service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "130" in service["SuccessExitStatus"].split()
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == SHIPPED_EMOEDGE
    args = build_parser().parse_args(argv[1:])
    assert args.sources is not None and args.http == "0.0.0.0:8080" and args.download is False


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian: systemd)")
    here = Path(sys.executable).with_name("emoedge")  # the unit as installed: its ExecStart exists
    unit = tmp_path / "emoedge.service"
    unit.write_text(UNIT.read_text().replace(SHIPPED_EMOEDGE, str(here)))
    check = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "emoedge.service" not in check.stderr, check.stderr
