"""`protoviz --help` lists every command without importing torch (so it answers at once), and
`python -m protoviz` is the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protoviz.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from protoviz.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "numpy", "PIL", "streamlit") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_help_imports_no_torch() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=120)
    assert "HEAVY []" in done.stdout
    for name in COMMANDS:
        assert name in done.stdout


def test_python_dash_m_protoviz_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "protoviz", "evaluate", "--help"], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=120)
    assert "--metrics" in done.stdout and "object_overlap" in done.stdout  # metric help from the registry


def test_every_command_still_registers_its_full_parser(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()  # all of them, as before
    assert parser.parse_args(["info", "x.safetensors"]).command == "info"
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "torchrun" in capsys.readouterr().out
