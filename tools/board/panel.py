"""What the emulated board's SPI panel shows, read back from qemu's PL061 pin trace.

The trace (`-trace pl061_set_output`) has one line per output change. SPI mode 0 is
decoded from it: while chip select is low, MOSI is sampled on each rising clock edge,
most significant bit first, 8 bits a byte; the DC line tells commands (low) from data.
The ST7789 command stream is then replayed into the controller's 240x320 memory.
Standard library only (PNG reading and writing included)."""

import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

# PL061 lines as wired in tools/board/spi.dts and tools/board/board.toml.
SCK, MOSI, CS, DC = 0, 1, 2, 4
TRACE_LINE = re.compile(rb"pl061_set_output .* setting output (\d+) to (\d)")

# MIPI DCS / ST7789 commands the replay understands.
SWRESET, SLPOUT, INVOFF, INVON, DISPON = 0x01, 0x11, 0x20, 0x21, 0x29
CASET, RASET, RAMWR, MADCTL, COLMOD = 0x2A, 0x2B, 0x2C, 0x36, 0x3A
MEMORY_WIDTH, MEMORY_HEIGHT = 240, 320


@dataclass
class Transfer:
    """The bytes sent while DC held one level (a command byte, or its data)."""
    command: bool
    data: bytearray


@dataclass
class DecodedTrace:
    transfers: list[Transfer]
    events: int
    bytes: int
    transfers_count: int


def decode_trace(path: Path) -> DecodedTrace:
    """SPI bytes, split wherever DC changes, from a PL061 trace file."""
    levels = [None] * 8
    selected = False
    bits = value = 0
    events = total = 0
    transfers: list[Transfer] = []
    with open(path, "rb") as trace:
        for line in trace:
            found = TRACE_LINE.search(line)
            if not found:
                continue
            events += 1
            pin, level = int(found.group(1)), found.group(2) == b"1"
            previous = levels[pin]
            levels[pin] = level
            if pin == CS:
                # Only a falling edge selects: the lines read low before the bus is set up.
                if previous is True and not level:
                    selected, bits, value = True, 0, 0
                elif level:
                    selected = False
            elif pin == SCK and selected and level and previous is False:
                value = (value << 1) | (1 if levels[MOSI] else 0)
                bits += 1
                if bits == 8:
                    command = not levels[DC]
                    if not transfers or transfers[-1].command != command or command:
                        transfers.append(Transfer(command, bytearray()))
                    transfers[-1].data.append(value)
                    total += 1
                    bits = value = 0
    return DecodedTrace(transfers, events, total, len(transfers))


@dataclass
class Screen:
    """The controller's frame memory after a replay, as RGB565 words."""
    memory: list[int] = field(default_factory=lambda: [0] * (MEMORY_WIDTH * MEMORY_HEIGHT))
    inverted: bool = False
    madctl: int = 0
    colmod: int = 0
    commands: dict[int, int] = field(default_factory=dict)

    def visible(self, width: int, height: int, x0: int = 0, y0: int = 0) -> "Picture":
        """The panel's visible area, as the glass shows it (inversion applied)."""
        flip = 0xFFFF if self.inverted else 0
        rows = []
        for y in range(y0, y0 + height):
            start = y * MEMORY_WIDTH + x0
            rows.extend(word ^ flip for word in self.memory[start:start + width])
        return Picture(width, height, rows)

    def command_summary(self) -> str:
        names = {SWRESET: "SWRESET", SLPOUT: "SLPOUT", INVOFF: "INVOFF", INVON: "INVON", DISPON: "DISPON",
                 CASET: "CASET", RASET: "RASET", RAMWR: "RAMWR", MADCTL: "MADCTL", COLMOD: "COLMOD"}
        return ", ".join(f"{names.get(c, hex(c))}x{n}" for c, n in self.commands.items())


@dataclass
class Picture:
    width: int
    height: int
    rgb565: list[int]

    def to_rgb888(self) -> bytes:
        out = bytearray()
        for word in self.rgb565:
            r, g, b = word >> 11, (word >> 5) & 0x3F, word & 0x1F
            out += bytes(((r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)))
        return bytes(out)

    def compare_rgb888(self, rgb: bytes) -> int:
        """How many pixels differ from `rgb` (8-bit RGB) once that is cut to RGB565."""
        differing = 0
        for index, word in enumerate(self.rgb565):
            r, g, b = rgb[3 * index], rgb[3 * index + 1], rgb[3 * index + 2]
            if word != ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3):
                differing += 1
        return differing


class ReplayError(Exception):
    pass


def replay_st7789(transfers: list[Transfer]) -> Screen:
    """Runs the command stream against a model of the controller's memory."""
    screen = Screen()
    columns = (0, MEMORY_WIDTH - 1)
    rows = (0, MEMORY_HEIGHT - 1)
    index = 0
    while index < len(transfers):
        transfer = transfers[index]
        index += 1
        if not transfer.command:
            raise ReplayError(f"{len(transfer.data)} data bytes without a command")
        command = transfer.data[0]
        screen.commands[command] = screen.commands.get(command, 0) + 1
        data = bytearray()
        if index < len(transfers) and not transfers[index].command:
            data = transfers[index].data
            index += 1
        if command == CASET:
            columns = struct.unpack(">HH", bytes(data[:4]))
        elif command == RASET:
            rows = struct.unpack(">HH", bytes(data[:4]))
        elif command == MADCTL:
            screen.madctl = data[0]
            if screen.madctl & 0xE0:
                raise ReplayError(f"MADCTL {screen.madctl:#04x}: rotated memory access is not modelled")
        elif command == COLMOD:
            screen.colmod = data[0]
        elif command == INVON:
            screen.inverted = True
        elif command == INVOFF:
            screen.inverted = False
        elif command == SWRESET:
            screen.memory = [0] * (MEMORY_WIDTH * MEMORY_HEIGHT)
        elif command == RAMWR:
            if screen.colmod & 0x07 != 0x05:
                raise ReplayError(f"RAMWR with COLMOD {screen.colmod:#04x}, not 16-bit RGB565")
            bgr = bool(screen.madctl & 0x08)
            x, y = columns[0], rows[0]
            for offset in range(0, len(data) - 1, 2):
                word = (data[offset] << 8) | data[offset + 1]
                if bgr:
                    word = ((word & 0x1F) << 11) | (word & 0x07E0) | (word >> 11)
                if x < MEMORY_WIDTH and y < MEMORY_HEIGHT:
                    screen.memory[y * MEMORY_WIDTH + x] = word
                x += 1
                if x > columns[1]:
                    x = columns[0]
                    y += 1
                    if y > rows[1]:
                        y = rows[0]
    return screen


def read_png(path: Path) -> tuple[int, int, bytes]:
    """Width, height and 8-bit RGB pixels of an 8-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    position, idat, header = 8, bytearray(), None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if header is None:
        raise ValueError(f"{path}: no IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"{path}: depth {depth} colour type {colour} interlace {interlace} not read here")
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(bytes(idat))
    pixels = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - upper_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                row[i] = (row[i] + predictor) & 0xFF
        previous = row
        if channels == 3:
            pixels += row
        else:
            for i in range(0, stride, 4):
                pixels += row[i:i + 3]
    return width, height, bytes(pixels)


def write_png(path: Path, width: int, height: int, rgb: bytes):
    """Writes 8-bit RGB pixels as a PNG."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
