"""Smoke test of ``contest-bot bench --quick``: it runs end to end and prints every figure.

Speed is not asserted here (the machine is shared); the figures themselves are the output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench_command() -> list[str]:
    script = Path(sys.executable).parent / "contest-bot"
    if script.exists():
        return [str(script), "bench"]
    return [sys.executable, "-m", "bot.cli", "bench"]


@pytest.mark.slow
def test_quick_bench_prints_every_figure(tmp_path: Path):
    figures = tmp_path / "bench.json"
    completed = subprocess.run(
        [*bench_command(), "--quick", "--json", str(figures)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    out = completed.stdout
    assert completed.returncode == 0, f"stdout:\n{out}\nstderr:\n{completed.stderr[-3000:]}"
    for text in (
        "nproc",  # the machine
        "python-telegram-bot",
        "answers/s",
        "Zalo channel:",
        "p50",
        "p95",
        "p99",
        "CPU s per 1,000 answers",
        "peak RSS",
        "no-op PTB bot",
        "httpx",
        "re-arm",
        "notifications",
        "ranking + qualification",
        "XLSX export",
        "Targets",
    ):
        assert text in out, f"{text!r} missing from the output:\n{out}"
    verdicts = re.findall(r"^\s+(PASS|FAIL)\s", out, flags=re.MULTILINE)
    assert len(verdicts) == 6, out  # a verdict next to each target
    data = json.loads(figures.read_text(encoding="utf-8"))
    runs = data["load"]
    for name in ("full_aiohttp_rate", "noop_aiohttp_rate", "full_aiohttp_max"):
        assert runs[name]["answers"] > 0, runs[name]
    assert {"noop_aiohttp_max", "full_httpx_max"} <= set(runs)
    assert data["zalo"]["answers"] == data["params"]["zalo_people"] * 20
    assert data["zalo"]["answers_per_s"] > 0
    assert data["rearm"]["rearmed"] == data["rearm"]["attempts"]
    assert data["notify"]["sent"] == data["params"]["notify"]
    assert data["ranking"]["ranked"] == data["params"]["big"]
    assert data["export"]["rows"] == data["params"]["big"]
    assert len(data["targets"]) == 6
    assert data["failures"] == []
