"""Helpers of the emulated board's checks (tools/board/board.py): systemd's time spans,
the emotion log's schema, and the unit settings the devices check runs its probe under."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "board"))
import board  # noqa: E402


def test_time_spans_as_systemctl_prints_them():
    assert board.seconds("30s") == 30.0
    assert board.seconds("1min 30s") == 90.0
    assert board.seconds("500ms") == 0.5
    assert board.seconds("2h 1min 250ms") == 7260.25
    with pytest.raises(board.CheckFailed):
        board.seconds("infinity")


def status_line(**changes) -> str:
    record = {"v": 1, "time": "2026-12-06T23:00:00Z", "event": "status", "status": "running", "faces": 0,
              "fps": 5.0, "frames": 10, "dropped": 0, "corrupt": 0, "camera_failures": 0, "log_dropped": 0}
    record.update(changes)
    return json.dumps({key: value for key, value in record.items() if value is not None})


def test_schema_accepts_status_lines_and_names_the_first_bad_one():
    assert [r["frames"] for r in board.check_schema([status_line(frames=1), status_line(frames=2)])] == [1, 2]
    with pytest.raises(board.CheckFailed, match="line 2 lacks \\['fps'\\]"):
        board.check_schema([status_line(), status_line(fps=None)])
    with pytest.raises(board.CheckFailed, match="line 1 is not schema v1"):
        board.check_schema([status_line(v=2)])
    with pytest.raises(board.CheckFailed, match="line 2 is not JSON"):
        board.check_schema([status_line(), '{"v": 1, "event": "sta'])


class FakeBoard:
    """Answers `systemctl cat` with a unit's [Service] section, as the board would."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.commands: list[str] = []

    def must(self, command: str, timeout: float) -> list[str]:
        self.commands.append(command)
        return self.lines


def test_the_probe_gets_the_sandbox_but_not_how_the_service_runs():
    unit = ["[Service]", "# a comment", "Type=notify", "ExecStart=/usr/bin/emotion-pi run", "WatchdogSec=30",
            "User=emotion-pi", "ProtectSystem=strict", "DeviceAllow=char-video4linux rw",
            "SystemCallFilter=@system-service", "CapabilityBoundingSet=", "StateDirectory=emotion-pi",
            "RestartSec=2", "[Service]", "TimeoutStartSec=90"]
    assert board.sandbox_properties(FakeBoard(unit)) == [
        "-p User=emotion-pi", "-p ProtectSystem=strict", "-p 'DeviceAllow=char-video4linux rw'",
        "-p SystemCallFilter=@system-service", "-p CapabilityBoundingSet=",
    ]
