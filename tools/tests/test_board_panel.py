"""The emulated board's panel decoder: SPI bytes from a PL061 pin trace, the ST7789
replay, and the standard-library PNG reader (tools/board/panel.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "board"))
import panel  # noqa: E402

LINE = "pl061_set_output /machine/unattached/device[7] setting output {} to {}\n"


def spi_trace(messages: list[tuple[bool, bytes]]) -> str:
    """Pin changes as spi-gpio makes them in mode 0: DC set while deselected, chip select
    low, then per bit MOSI, clock up, clock down; chip select high after each message."""
    lines = [LINE.format(pin, 0) for pin in range(8)]  # the PL061's reset state
    lines.append(LINE.format(panel.CS, 1))
    dc = mosi = 0
    for command, data in messages:
        if dc != (0 if command else 1):
            dc = 0 if command else 1
            lines.append(LINE.format(panel.DC, dc))
        lines.append(LINE.format(panel.CS, 0))
        for byte in data:
            for bit in range(7, -1, -1):
                level = (byte >> bit) & 1
                if level != mosi:
                    mosi = level
                    lines.append(LINE.format(panel.MOSI, level))
                lines.append(LINE.format(panel.SCK, 1))
                lines.append(LINE.format(panel.SCK, 0))
        lines.append(LINE.format(panel.CS, 1))
    return "".join(lines)


def test_bytes_come_back_split_where_dc_changes(tmp_path):
    trace = tmp_path / "pins.trace"
    trace.write_text(spi_trace([(True, b"\x2a"), (False, b"\x00\x01"), (False, b"\xff\x80"), (True, b"\x29")]))
    decoded = panel.decode_trace(trace)
    assert [(t.command, bytes(t.data)) for t in decoded.transfers] == [
        (True, b"\x2a"), (False, b"\x00\x01\xff\x80"), (True, b"\x29")]
    assert decoded.bytes == 6


def test_replay_writes_the_window_and_wraps_rows():
    red, blue = 0xF800, 0x001F
    window = [red, blue, blue, red]  # 2x2 at (3, 5), row-major
    pixels = b"".join(p.to_bytes(2, "big") for p in window)
    transfers = [
        panel.Transfer(True, bytearray([panel.COLMOD])), panel.Transfer(False, bytearray([0x55])),
        panel.Transfer(True, bytearray([panel.CASET])), panel.Transfer(False, bytearray([0, 3, 0, 4])),
        panel.Transfer(True, bytearray([panel.RASET])), panel.Transfer(False, bytearray([0, 5, 0, 6])),
        panel.Transfer(True, bytearray([panel.RAMWR])), panel.Transfer(False, bytearray(pixels)),
    ]
    picture = panel.replay_st7789(transfers).visible(8, 8)
    grid = np.array(picture.rgb565).reshape(8, 8)
    assert grid[5, 3] == red and grid[5, 4] == blue and grid[6, 3] == blue and grid[6, 4] == red
    assert np.count_nonzero(grid) == 4


def test_png_reader_matches_pillow_and_the_writer(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    image[:, :8] = image[:, :1]  # runs that make Pillow's encoder pick the other filters
    path = tmp_path / "a.png"
    Image.fromarray(image).save(path, optimize=True)
    width, height, rgb = panel.read_png(path)
    assert (width, height) == (23, 17) and rgb == image.tobytes()
    again = tmp_path / "b.png"
    panel.write_png(again, width, height, rgb)
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB")), image)
