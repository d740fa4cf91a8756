#!/usr/bin/env python3
"""The host side of the emulated Pi board (tools/board.sh): boots the board under
qemu-system-aarch64, drives its shell over the virtio console, reads the PL011 UART and
the PL061 pin trace, and runs the checks. Python standard library only."""

import argparse
import base64
import collections
import json
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import panel  # noqa: E402  (tools/board/panel.py)

# Seconds from qemu's start to the board's shell: busybox (level 1), systemd (level 2).
BOOT_TIMEOUT = {1: 90.0, 2: 300.0}
# vivid's module options: one instance with a video capture and a video output node.
VIVID = "vivid n_devs=1 node_types=0x101"
# Pixel formats the firmware reads (src/capture/convert.rs), as V4L2 fourccs, and config names.
FIRMWARE_FORMATS = {"YUYV": "yuyv", "YU12": "yu12", "NV12": "nv12", "GREY": "grey", "MJPG": "mjpeg"}
# The log's schema version 1 (README "run"): fields every line of each kind carries.
FACE_FIELDS = {"v", "time", "event", "track", "emotion", "confidence", "probs", "box", "frame"}
STATUS_FIELDS = {"v", "time", "event", "status", "faces", "fps", "frames", "dropped", "corrupt",
                 "camera_failures", "log_dropped"}
EMOTIONS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


class CheckFailed(Exception):
    """A check's reason for failing."""


class Board:
    """One boot of the board; commands go to its shell, results come back line by line."""

    def __init__(self, cache: Path, name: str, trace: bool = False, level: int = 1):
        self.run_dir = cache / "runs" / name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.uart = self.run_dir / "uart.log"
        self.trace = self.run_dir / "pins.trace" if trace else None
        self.console_log = open(self.run_dir / "console.log", "w", encoding="utf-8")
        for stale in (self.uart, self.trace):
            if stale and stale.exists():
                stale.unlink()
        command = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            "-nodefaults", "-display", "none", "-kernel", str(cache / "kernel" / "vmlinuz"),
            "-dtb", str(cache / "board.dtb"), "-serial", f"file:{self.uart}", "-device", "virtio-serial-device",
        ]
        if level == 1:
            command += [
                "-initrd", str(cache / "initrd.img"), "-append", "console=hvc0 quiet board.mode=serve",
                "-chardev", "stdio,id=console,signal=off", "-device", "virtconsole,chardev=console",
            ]
        else:
            # systemd on the Debian disk (a throw-away snapshot of the cached image, so each
            # boot starts clean); the payload disk brings the .deb. hvc0 is the console, kept
            # in a file; hvc1 is the host's channel.
            command += [
                "-initrd", str(cache / "base.cpio.gz"),
                "-append", "console=hvc0 quiet board.mode=disk systemd.show_status=0",
                "-drive", f"if=none,id=root,format=raw,snapshot=on,file={cache / 'rootfs.img'}",
                "-device", "virtio-blk-device,drive=root",
                "-drive", f"if=none,id=payload,format=raw,readonly=on,file={cache / 'payload.img'}",
                "-device", "virtio-blk-device,drive=payload",
                "-chardev", f"file,id=console,path={self.run_dir / 'boot.log'}",
                "-device", "virtconsole,chardev=console",
                "-chardev", "stdio,id=harness,signal=off", "-device", "virtconsole,chardev=harness",
            ]
        if self.trace:
            command += ["-trace", "pl061_set_output", "-D", str(self.trace)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._expect(lambda line: line.startswith("@@ready"), BOOT_TIMEOUT[level], "the board's shell")
        self.kernel = ready.split()[1] if len(ready.split()) > 1 else "?"

    def _read(self):
        assert self.process.stdout
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.console_log.write(line + "\n")
            self.console_log.flush()
            self.lines.put(line)
        self.lines.put(None)

    def _expect(self, match, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise CheckFailed(f"qemu exited while waiting for {what} (see {self.console_log.name})")
            if match(line):
                return line

    def run(self, command: str, timeout: float) -> tuple[int, list[str], dict[str, bytes]]:
        """Runs one shell line on the board: exit status, output lines, files sent by `dumpfile`."""
        assert self.process.stdin
        self.process.stdin.write((command + "\n").encode())
        self.process.stdin.flush()
        output: list[str] = []
        files: dict[str, bytes] = {}
        current: list[str] | None = None
        name = ""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            line = self._expect(lambda _: True, max(left, 0.001), f"`{command[:60]}`")
            if current is not None:
                if line == "@@eof":
                    files[name] = base64.b64decode("".join(current))
                    current = None
                else:
                    current.append(line)
            elif line.startswith("@@file "):
                name, current = line[7:], []
            elif line.startswith("@@rc "):
                return int(line[5:]), output, files
            else:
                output.append(line)

    def must(self, command: str, timeout: float) -> list[str]:
        """Like `run`, failing the check when the command fails."""
        rc, output, _ = self.run(command, timeout)
        if rc != 0:
            tail = " | ".join(output[-3:])
            raise CheckFailed(f"`{command[:60]}` exited {rc}: {tail}")
        return output

    def uart_lines(self) -> list[str]:
        """The complete lines received on the UART so far."""
        if not self.uart.exists():
            return []
        text = self.uart.read_bytes().decode("utf-8", "replace")
        return [line.rstrip("\r") for line in text.split("\n")[:-1]]

    def wait_uart(self, match, timeout: float, what: str, start: int = 0) -> tuple[int, dict]:
        """Waits for a UART line (index >= start) whose JSON satisfies `match`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, line in enumerate(self.uart_lines()[start:], start):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if match(record):
                    return index, record
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise CheckFailed(f"no {what} on the UART within {timeout:.0f} s")

    def close(self):
        """Powers the board off (flushing the trace), killing qemu if it does not stop."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin
                self.process.stdin.write(b"poweroff -f\n")
                self.process.stdin.flush()
            except OSError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.console_log.close()


def check_schema(lines: list[str]) -> list[dict]:
    """Every line parsed as a schema v1 record; CheckFailed names the first bad one."""
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError as err:
            raise CheckFailed(f"UART line {number} is not JSON ({err}): {line[:80]!r}")
        if not isinstance(record, dict) or record.get("v") != 1:
            raise CheckFailed(f"UART line {number} is not schema v1: {line[:80]!r}")
        if "status" in record:
            missing = STATUS_FIELDS - record.keys()
        else:
            missing = FACE_FIELDS - record.keys() if record.get("event") != "lost" else set()
            if record.get("emotion", "neutral") not in EMOTIONS:
                raise CheckFailed(f"UART line {number}: unknown emotion {record.get('emotion')!r}")
        if missing:
            raise CheckFailed(f"UART line {number} lacks {sorted(missing)}: {line[:80]!r}")
        records.append(record)
    return records


def firmware_written(output: list[str]) -> int | None:
    """The firmware's own count of log lines written, from its closing message."""
    for line in output:
        found = re.search(r"log: (\d+) written, (\d+) dropped", line)
        if found:
            return int(found.group(1))
    return None


# --- the checks -------------------------------------------------------------------------


def check_doctor(cache: Path, notes: list[str]):
    board = Board(cache, "doctor")
    try:
        rc, output, _ = board.run("emotion-pi doctor", 240)
    finally:
        board.close()
    text = "\n".join(output)
    (cache / "runs" / "doctor" / "doctor.txt").write_text(text + "\n")
    camera = next((l for l in output if "camera /dev/video0" in l), "")
    wanted = {
        "camera /dev/video0 with formats": "offers" in camera and "would use" in camera,
        "SPI /dev/spidev0.0": any("SPI /dev/spidev0.0" in l and "[  ok   ]" in l for l in output),
        "GPIO /dev/gpiochip0": any("GPIO /dev/gpiochip0" in l and "[  ok   ]" in l for l in output),
        "serial /dev/ttyAMA0": any("serial /dev/ttyAMA0" in l and "[  ok   ]" in l for l in output),
        "models": any("models:" in l and "[  ok   ]" in l for l in output),
    }
    missing = [name for name, seen in wanted.items() if not seen]
    problems = [l.strip() for l in output if "PROBLEM" in l]
    if missing:
        raise CheckFailed(f"doctor does not list {', '.join(missing)}")
    if problems or rc != 0:
        raise CheckFailed(f"doctor exited {rc}: {'; '.join(problems)[:200]}")
    DOCTOR_CAMERA_LINE[:] = [camera]
    offered = re.search(r"offers ([^;]*); would use (\S+)", camera)
    if offered:
        names = [f.strip() for f in offered.group(1).split(",")]
        readable = [f for f in names if f in FIRMWARE_FORMATS]
        notes.append(f"vivid's /dev/video0 offers {len(names)} formats, {len(readable)} the firmware reads "
                     f"({', '.join(readable)}); it would use {offered.group(2)}")
    notes.append("listed with no problem: /dev/spidev0.0, /dev/gpiochip0, /dev/ttyAMA0, the models")


# The doctor check's camera line, kept for the camera check: each firmware start loads the
# models, which takes over a minute under emulation.
DOCTOR_CAMERA_LINE: list[str] = []


def vivid_formats(board: Board) -> list[str]:
    """The capture formats vivid offers on /dev/video0, from the firmware's doctor."""
    output = DOCTOR_CAMERA_LINE or board.must("emotion-pi doctor 2>&1 | grep 'camera /dev/video0'", 240)
    found = re.search(r"offers ([^;]*);", " ".join(output))
    if not found:
        raise CheckFailed(f"doctor lists no formats: {output}")
    return [f.strip() for f in found.group(1).split(",")]


def check_camera(cache: Path, notes: list[str]):
    board = Board(cache, "camera")
    try:
        offered = vivid_formats(board)
        usable = [f for f in offered if f in FIRMWARE_FORMATS]
        if not usable:
            raise CheckFailed(f"vivid offers none of the firmware's formats: {offered}")
        frames = 8
        for fourcc in usable:
            name = FIRMWARE_FORMATS[fourcc]
            config = f"/tmp/camera-{name}.toml"
            log = f"/tmp/camera-{name}.jsonl"
            board.must(f"sed 's/^fps = .*/fps = 5\\nformat = \"{name}\"/' /etc/emotion-pi/config.toml > {config}", 10)
            output = board.must(
                f"timeout 300 emotion-pi -v run --config {config} --serial {log} --max-frames {frames} 2>&1", 320)
            negotiated = [l for l in output if re.search(r"/dev/video0: \S+ \d+x\d+", l)]
            if not negotiated or fourcc_name(name) not in negotiated[0]:
                raise CheckFailed(f"{fourcc}: the firmware did not negotiate it: {negotiated[:1] or output[-2:]}")
            _, _, files = board.run(f"dumpfile {log}", 30)
            lines = files.get(log, b"").decode().splitlines()
            records = check_schema(lines)
            statuses = [r for r in records if "status" in r]
            if not statuses or statuses[-1]["status"] != "stopped":
                raise CheckFailed(f"{fourcc}: no final stopped status line: {lines[-1:] }")
            if statuses[-1]["frames"] < frames or statuses[-1]["corrupt"] != 0:
                raise CheckFailed(f"{fourcc}: final status {statuses[-1]}")
            if not any(r["status"] in ("running", "no face") for r in statuses):
                raise CheckFailed(f"{fourcc}: no running status line")
            notes.append(f"{fourcc} {negotiated[0].split(': ', 1)[-1].split()[-1]}: "
                         f"{statuses[-1]['frames']} frames, {len(statuses)} status lines")
    finally:
        board.close()


def fourcc_name(config_name: str) -> str:
    """How the firmware's log names a pixel format (PixelFormat's Display)."""
    return {"yuyv": "YUYV", "yu12": "YU12", "nv12": "NV12", "grey": "GREY", "mjpeg": "MJPG"}[config_name]


def read_back_in_full(output: list[str], lines: list[str]) -> list[dict]:
    """The UART lines as records, once the host has read every line the firmware says it
    wrote, ending with its `stopped` status and nothing dropped."""
    records = check_schema(lines)
    written = firmware_written(output)
    if written is None:
        raise CheckFailed(f"the firmware did not report its log count: {output[-2:]}")
    if written != len(records) or not records:
        raise CheckFailed(f"the firmware wrote {written} log lines, the host read {len(records)}")
    if records[-1].get("status") != "stopped" or records[-1].get("log_dropped") != 0:
        raise CheckFailed(f"last line is not the stopped status with nothing dropped: {lines[-1]}")
    return records


def loop_face(board: Board):
    """vivid's HDMI output looped into its capture (the only pairing vivid loops), fed the
    smiling astronaut: a known face through the kernel's video path."""
    board.must("rmmod vivid && modprobe vivid n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 "
               "num_outputs=1 output_types=0x1", 30)
    board.must("vivid_feed /dev/video1 /dev/video0 YUYV 640 480 /board/astronaut.yuyv 0 > /tmp/feed.out 2>&1 &"
               " wait_for 100 grep -q looped /tmp/feed.out || { cat /tmp/feed.out; false; }", 30)


def check_uart(cache: Path, notes: list[str]):
    board = Board(cache, "uart")
    frames = 40
    try:
        # A face in view and a status line every half second: every kind of line, many of them.
        loop_face(board)
        board.must("sed -e 's/^fps = .*/fps = 5\\nformat = \"yuyv\"/' -e 's/^heartbeat_secs = .*/heartbeat_secs = 0.5/' "
                   "/etc/emotion-pi/config.toml > /tmp/uart.toml", 10)
        began = time.monotonic()
        output = board.must(f"timeout 500 emotion-pi -v run --config /tmp/uart.toml --serial /dev/ttyAMA0 "
                            f"--max-frames {frames} 2>&1", 520)
        took = time.monotonic() - began
        time.sleep(0.5)
        lines = board.uart_lines()
    finally:
        board.close()
    records = read_back_in_full(output, lines)
    events = collections.Counter(record.get("event", "?") for record in records)
    if events.get("new", 0) == 0 or events.get("status", 0) < 3:
        raise CheckFailed(f"expected status lines and a new face among the {len(records)} lines: {events}")
    notes.append(f"{len(records)} lines read on the host from the PL011 over a {frames}-frame run ({took:.0f} s), "
                 f"as many as the firmware wrote, all JSON schema v1: "
                 f"{', '.join(f'{count} {kind}' for kind, count in sorted(events.items()))}")


def check_unplug(cache: Path, notes: list[str]):
    board = Board(cache, "unplug")
    try:
        board.must("emotion-pi -v run --serial /dev/ttyAMA0 > /tmp/unplug.out 2>&1 & echo $! > /tmp/firmware.pid", 10)
        index, _ = board.wait_uart(lambda r: r.get("status") in ("running", "no face") and r["frames"] > 0, 180,
                                   "status line with frames")
        unplugged = time.monotonic()
        # The firmware holds /dev/video0 open, so the module cannot go while it does; unbinding
        # the device is the unplug (as a USB camera's disconnect), and once the firmware has let
        # go of the node, the module is removed.
        board.must("echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind", 20)
        index, gone = board.wait_uart(lambda r: r.get("status") == "no camera", 30, '"no camera" status', index)
        noticed = time.monotonic() - unplugged
        board.must("wait_for 200 rmmod vivid", 30)
        replugged = time.monotonic()
        board.must(f"modprobe {VIVID}", 30)
        index, back = board.wait_uart(lambda r: r.get("status") in ("running", "no face"), 60,
                                      "status line after replug", index)
        frames_before = back["frames"]
        back_at = time.monotonic() - replugged
        index, more = board.wait_uart(lambda r: "status" in r and r["frames"] > frames_before, 60,
                                      "frames after replug", index)
        flowing = time.monotonic() - replugged
        board.must("kill -INT $(cat /tmp/firmware.pid)", 10)
        board.must("wait_for 300 sh -c '! kill -0 $(cat /tmp/firmware.pid) 2>/dev/null'", 40)
        _, output, _ = board.run("cat /tmp/unplug.out", 20)
        time.sleep(0.5)
        lines = board.uart_lines()
    finally:
        board.close()
    records = read_back_in_full(output, lines)
    notes.append(f'"no camera" {noticed:.1f} s after the unplug (camera_failures {gone["camera_failures"]}); '
                 f"running {back_at:.1f} s and new frames {flowing:.1f} s after modprobe; "
                 f"{len(records)} lines written and read, none dropped")


def wait_for_quiet_trace(trace: Path, at_least: int, quiet: float, timeout: float) -> float:
    """Waits until the pin trace has grown past `at_least` bytes and then not grown for
    `quiet` seconds (the screen is sent); returns the seconds waited."""
    started = time.monotonic()
    size, changed = -1, started
    while time.monotonic() - started < timeout:
        now_size = trace.stat().st_size if trace.exists() else 0
        if now_size != size:
            size, changed = now_size, time.monotonic()
        elif size >= at_least and time.monotonic() - changed >= quiet:
            return changed - started
        time.sleep(0.5)
    raise CheckFailed(f"the panel's pins did not settle within {timeout:.0f} s (trace {size} bytes)")


def check_panel(cache: Path, notes: list[str]):
    board = Board(cache, "panel", trace=True)
    run_dir = board.run_dir
    assert board.trace
    frame = "--source stdin:yuyv:640x480 --serial none"
    try:
        # One camera frame through a pipe kept open (the frame is read once the models are
        # loaded): the firmware draws its screen and waits for the next frame, so the bit-banged transfer is not cut short by the end of the
        # run (the display gets 3 s at shutdown, a 40 MHz bus needs 23 ms for a screen).
        board.must(f"mkfifo /tmp/frames && (emotion-pi -v run {frame} --display st7789 < /tmp/frames "
                   "> /tmp/panel.out 2>&1 &) && exec 3>/tmp/frames && (cat /board/astronaut.yuyv >&3 &)", 30)
        sent = wait_for_quiet_trace(board.trace, 50_000_000, 8, 900)
        board.must("exec 3>&- && wait_for 600 sh -c '! pidof emotion-pi >/dev/null'", 90)
        _, output, _ = board.run("cat /tmp/panel.out", 20)
        board.must(f"emotion-pi run {frame} --display png:/tmp/screens < /board/astronaut.yuyv", 300)
        _, listing, _ = board.run("ls /tmp/screens", 10)
        if len(listing) != 1:
            raise CheckFailed(f"the simulator wrote {listing}, not one screen")
        _, _, files = board.run(f"dumpfile /tmp/screens/{listing[0]}", 60)
    finally:
        board.close()
    drawn = [l for l in output if "screens drawn" in l]
    if not drawn or "1 screens drawn" not in drawn[0]:
        raise CheckFailed(f"the panel thread did not draw one screen: {drawn or output[-3:]}")
    simulator_png = run_dir / "simulator.png"
    simulator_png.write_bytes(next(iter(files.values())))
    decoded = panel.decode_trace(board.trace)
    screen = panel.replay_st7789(decoded.transfers)
    width, height, simulator = panel.read_png(simulator_png)
    picture = screen.visible(width, height)
    panel.write_png(run_dir / "panel.png", width, height, picture.to_rgb888())
    differing = picture.compare_rgb888(simulator)
    if differing:
        raise CheckFailed(f"{differing} of {width * height} pixels differ "
                          f"(decoded {run_dir / 'panel.png'} vs simulator {simulator_png})")
    notes.append(f"{decoded.bytes} SPI bytes in {decoded.transfers_count} transfers decoded from "
                 f"{decoded.events} pin changes; {width}x{height} identical to the simulator's PNG; "
                 f"pins settled {sent:.0f} s after the start (model load included); commands {screen.command_summary()}")


def yuyv_frame(png: Path, out: Path, width: int = 640, height: int = 480):
    """`png` scaled to fit `height` (nearest pixel), centred on grey, as one YUYV frame
    (BT.601, limited range)."""
    source_width, source_height, rgb = panel.read_png(png)
    size = height
    left = (width - size) // 2
    frame = bytearray()
    for y in range(height):
        row = []
        for x in range(width):
            if left <= x < left + size:
                sx, sy = (x - left) * source_width // size, y * source_height // size
                i = 3 * (sy * source_width + sx)
                r, g, b = rgb[i], rgb[i + 1], rgb[i + 2]
            else:
                r = g = b = 128
            row.append((r, g, b))
        for x in range(0, width, 2):
            (r0, g0, b0), (r1, g1, b1) = row[x], row[x + 1]
            y0 = 16 + (65.738 * r0 + 129.057 * g0 + 25.064 * b0) / 256
            y1 = 16 + (65.738 * r1 + 129.057 * g1 + 25.064 * b1) / 256
            r, g, b = (r0 + r1) / 2, (g0 + g1) / 2, (b0 + b1) / 2
            u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
            v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
            frame += bytes(min(255, max(0, round(c))) for c in (y0, u, y1, v))
    out.write_bytes(bytes(frame))


def check_face(cache: Path, notes: list[str]):
    board = Board(cache, "face")
    try:
        loop_face(board)
        config = "/tmp/face.toml"
        board.must(f"sed 's/^fps = .*/fps = 5\\nformat = \"yuyv\"/' /etc/emotion-pi/config.toml > {config}", 10)
        output = board.must(f"timeout 500 emotion-pi -v run --config {config} --serial /tmp/face.jsonl "
                            "--detect-every 1 --max-frames 4 2>&1", 520)
        _, _, files = board.run("dumpfile /tmp/face.jsonl", 30)
    finally:
        board.close()
    lines = files.get("/tmp/face.jsonl", b"").decode().splitlines()
    records = check_schema(lines)
    faces = [r for r in records if r.get("event") == "new"]
    if not faces:
        raise CheckFailed(f"no face found in the looped frames: {lines[-1:]} {output[-2:]}")
    if faces[0]["emotion"] != "happy":
        raise CheckFailed(f"the smiling astronaut came out {faces[0]['emotion']}: {json.dumps(faces[0])}")
    notes.append(f"new track {faces[0]['track']}: {faces[0]['emotion']} {faces[0]['confidence']:.2f}, "
                 f"box {faces[0]['box']} in {faces[0]['frame']}, through vivid's HDMI output-to-capture loop")



# --- level 2: the package under systemd --------------------------------------------------

SERVICE = "emotion-pi"
# The service's config for the devices check: the board's (camera, UART) with the ST7789
# panel on spidev0.0 and its pins on gpiochip0; one screen per start (the bus is bit-banged).
PANEL_CONFIG = "sed 's/^kind = \"none\"/kind = \"st7789\"\\nevery = 1000000/' /board/board.toml"
# The file system as listed before the install and after the purge. Left out: what
# changes by itself or by apt's own bookkeeping (logs, caches, dpkg's daily backups, dpkg's
# and apt's databases), the kernel's trees, and the host's payload.
FILES_LISTING = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp "
                 "-o -path /board -o -path /var/log -o -path /var/cache -o -path /var/backups -o -path /var/lib/apt "
                 "-o -path /var/lib/dpkg "
                 "\\) -prune -o -print | sort; getent passwd | cut -d: -f1 | sed 's/^/user /' | sort; "
                 "getent group | cut -d: -f1 | sed 's/^/group /' | sort")
DEVICES = ["/dev/video0", "/dev/spidev0.0", "/dev/gpiochip0", "/dev/ttyAMA0"]
# Unit settings that are about running the service, not its sandbox; the others are given
# to the transient unit of the devices check.
NOT_SANDBOX = {"Type", "ExecStart", "WatchdogSec", "TimeoutStartSec", "TimeoutStopSec", "Restart", "RestartSec",
               "Environment", "StateDirectory", "WorkingDirectory"}


class SystemdBoard:
    """The level-2 board, booted once for all its checks: they build on each other
    (install, then the service's status, sandbox, devices, watchdog, and the purge)."""

    def __init__(self):
        self.board: Board | None = None
        self.install_failed: str | None = None

    def boot(self, cache: Path, notes: list[str]) -> Board:
        if self.board is None:
            began = time.monotonic()
            self.board = Board(cache, "level2", trace=True, level=2)
            state = self.board.run("systemctl is-system-running --wait", 240)[1]
            startup = self.board.run("systemd-analyze time", 30)[1]
            notes.append(f"booted Debian 12 with systemd ({self.board.kernel}) in {time.monotonic() - began:.0f} s: "
                         f"{' '.join(state)}; {' '.join(startup)[:120]}")
            if state != ["running"]:
                failed = self.board.run("systemctl --failed --no-legend --plain", 30)[1]
                raise CheckFailed(f"the system is {' '.join(state)}: {'; '.join(failed)[:200]}")
        return self.board

    def installed(self) -> Board:
        """The board once the package is installed; CheckFailed when the install check failed."""
        if self.board is None or self.install_failed is not None:
            raise CheckFailed(f"the package is not installed ({self.install_failed or 'install did not run'})")
        return self.board

    def close(self):
        if self.board is not None:
            self.board.close()
            self.board = None


SYSTEMD = SystemdBoard()


def unit_properties(board: Board, *names: str) -> dict[str, str]:
    """Properties of the emotion-pi unit, from `systemctl show`."""
    output = board.must(f"systemctl show -p {','.join(names)} {SERVICE}", 30)
    return dict(line.split("=", 1) for line in output if "=" in line)


def wait_unit(board: Board, ready, timeout: float, what: str, *names: str) -> dict[str, str]:
    """Polls the unit's properties until `ready(properties)`; CheckFailed after `timeout`."""
    names = names or ("ActiveState", "SubState", "StatusText", "NRestarts", "MainPID")
    deadline = time.monotonic() + timeout
    while True:
        properties = unit_properties(board, *names)
        if ready(properties):
            return properties
        if time.monotonic() > deadline:
            raise CheckFailed(f"no {what} within {timeout:.0f} s: {properties}")
        time.sleep(1)


def running(properties: dict[str, str]) -> bool:
    """Active with READY sent (Type=notify) and the loop past its first status."""
    return (properties["ActiveState"], properties["SubState"]) == ("active", "running") \
        and properties["StatusText"].startswith(("running", "no face"))


def start_seconds(board: Board) -> float:
    """From the main process's start to READY (active), by systemd's own clock."""
    times = unit_properties(board, "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    return (int(times["ActiveEnterTimestampMonotonic"]) - int(times["ExecMainStartTimestampMonotonic"])) / 1e6


def check_install(cache: Path, notes: list[str]):
    SYSTEMD.install_failed = "boot failed"
    board = SYSTEMD.boot(cache, notes)
    board.must(f"({FILES_LISTING}) > /tmp/before.txt", 120)
    began = time.monotonic()
    rc, output, _ = board.run("cp /board/emotion-pi_arm64.deb /tmp/ && "
                              "DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/emotion-pi_arm64.deb 2>&1", 1200)
    (board.run_dir / "install.txt").write_text("\n".join(output) + "\n")
    if rc != 0:
        SYSTEMD.install_failed = f"apt-get install exited {rc}"
        raise CheckFailed(f"apt-get install exited {rc}: {' | '.join(output[-3:])}")
    installing = time.monotonic() - began
    properties = wait_unit(board, running, 300, "active service with a loop status")
    SYSTEMD.install_failed = None
    if properties["NRestarts"] != "0":
        raise CheckFailed(f"the service restarted {properties['NRestarts']} times on its way up")
    notes.append(f"apt-get install (offline) took {installing:.0f} s; active (READY) {start_seconds(board):.1f} s "
                 f"after its start by systemd's clock; NRestarts 0")


def check_status(cache: Path, notes: list[str]):
    board = SYSTEMD.installed()
    properties = unit_properties(board, "StatusText", "ActiveState", "SubState", "MainPID", "NRestarts")
    status = board.run(f"SYSTEMD_COLORS=0 systemctl status --no-pager -n 5 {SERVICE}", 30)[1]
    (board.run_dir / "status.txt").write_text("\n".join(status) + "\n")
    shown = [line.strip() for line in status if line.strip().startswith("Status:")]
    if not properties["StatusText"].startswith(("running", "no face")) or not shown:
        raise CheckFailed(f"no loop status in systemctl: {properties}; {shown}")
    notes.append(f"StatusText={properties['StatusText']}; systemctl status: {shown[0]}")


def check_security(cache: Path, notes: list[str]):
    board = SYSTEMD.installed()
    output = board.must(f"SYSTEMD_COLORS=0 systemd-analyze security --no-pager {SERVICE}", 300)
    (board.run_dir / "security.txt").write_text("\n".join(output) + "\n")
    score = [line for line in output if "Overall exposure level" in line]
    if not score:
        raise CheckFailed(f"no exposure level in systemd-analyze security's output: {output[-2:]}")
    notes.extend(output)


def sandbox_properties(board: Board) -> list[str]:
    """The installed unit's [Service] settings that make its sandbox, as `-p` arguments."""
    unit = board.must(f"systemctl cat {SERVICE} | sed -n '/^\\[Service\\]/,/^\\[/p'", 30)
    settings = []
    for line in unit:
        key, equals, _ = line.partition("=")
        if line[:1].isalpha() and equals and key not in NOT_SANDBOX:
            settings.append(f"-p {shlex.quote(line)}")
    return settings


def check_devices(cache: Path, notes: list[str]):
    board = SYSTEMD.installed()
    board.must(f"systemctl stop {SERVICE}", 60)
    # The service's own user under the unit's sandbox (a transient unit with its settings),
    # opening each node read-write; the serial port is free while the service is stopped.
    probe = "id -Gn; for node in " + " ".join(DEVICES) + \
        "; do if true 2>/dev/null <>$node; then echo opened $node; else echo denied $node; fi; done"
    output = board.must(f"systemd-run --quiet --wait --pipe {' '.join(sandbox_properties(board))} "
                        f"/bin/sh -c {shlex.quote(probe)} < /dev/null", 120)
    denied = [line for line in output if line.startswith("denied")]
    if denied or len([line for line in output if line.startswith("opened")]) != len(DEVICES):
        raise CheckFailed(f"under the unit's sandbox, as emotion-pi (groups {output[:1]}): {output[1:]}")
    owners = board.must("stat -c '%n %G %a' " + " ".join(DEVICES), 10)
    notes.append(f"the service user (groups: {output[0]}) opened {', '.join(DEVICES)} under the unit's sandbox; "
                 f"owners: {'; '.join(owners)}")
    # The service itself with all of them: the camera, the panel on spidev + gpiochip, the
    # emotion log on the UART that the host reads.
    board.must(f"{PANEL_CONFIG} > /etc/emotion-pi/config.toml", 10)
    trace_before = board.trace.stat().st_size if board.trace and board.trace.exists() else 0
    uart_before = len(board.uart_lines())
    board.must(f"systemctl start {SERVICE}", 120)
    wait_unit(board, running, 300, "active service with a loop status")
    _, record = board.wait_uart(lambda r: r.get("status") in ("running", "no face") and r["frames"] > 0, 120,
                                "status line with frames from the service", uart_before)
    journal = board.must(f"journalctl -o cat --no-pager _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID "
                         f"--value {SERVICE}) | grep -iE 'warn|error|denied|permission' | tail -5 || true", 60)
    if journal:
        raise CheckFailed(f"the service's journal has warnings: {' | '.join(journal)[:300]}")
    assert board.trace
    settled = wait_for_quiet_trace(board.trace, trace_before + 1_000_000, 5, 900)
    check_schema(board.uart_lines()[uart_before:])
    # Until now only this start drew (the packaged config has no display): the trace is its screen.
    decoded = panel.decode_trace(board.trace)
    screen = panel.replay_st7789(decoded.transfers)
    if screen.commands.get(panel.RAMWR, 0) == 0 or decoded.bytes < 240 * 240 * 2:
        raise CheckFailed(f"no screen on the panel's pins: {decoded.bytes} SPI bytes, {screen.command_summary()}")
    panel.write_png(board.run_dir / "panel.png", 240, 240, screen.visible(240, 240).to_rgb888())
    notes.append(f"the service with camera, ST7789 panel (spidev0.0 + gpiochip0) and log on ttyAMA0: active, "
                 f"{record['frames']} frames in its status line on the host's UART; on the panel's pins "
                 f"{decoded.bytes} SPI bytes, {screen.command_summary()} (settled {settled:.0f} s after READY); "
                 "no warning in its journal")


def seconds(timespan: str) -> float:
    """A systemd time span as `systemctl show` prints it (`30s`, `1min 30s`, `500ms`)."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|min|h)", timespan)
    if not parts:
        raise CheckFailed(f"not a time span: {timespan!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def check_watchdog(cache: Path, notes: list[str]):
    board = SYSTEMD.installed()
    before = wait_unit(board, running, 300, "running service")
    watchdog = seconds(unit_properties(board, "WatchdogUSec")["WatchdogUSec"])
    # The watchdog counts from the last ping (at most a quarter period before the stop); the
    # slack covers systemd noticing it and the emulated board's pace.
    slack = 15.0
    stopped = float(board.must(f"date +%s.%N && kill -STOP {before['MainPID']}", 10)[0])
    after = wait_unit(board, lambda p: p["NRestarts"] != before["NRestarts"], watchdog + slack + 30,
                      "restart after SIGSTOP", "NRestarts", "MainPID")
    events = board.must(f"journalctl -b -u {SERVICE} -o short-unix --no-pager --since @{stopped:.0f} | "
                        "grep -E 'Watchdog timeout|Scheduled restart' || true", 30)
    fired = [float(line.split()[0]) for line in events if "Watchdog timeout" in line]
    scheduled = [float(line.split()[0]) for line in events if "Scheduled restart" in line]
    if not fired or not scheduled:
        raise CheckFailed(f"no watchdog timeout and scheduled restart in the journal: {events}")
    if fired[0] - stopped > watchdog + slack:
        raise CheckFailed(f"the watchdog fired {fired[0] - stopped:.1f} s after SIGSTOP, over {watchdog + slack:.0f} s")
    back = wait_unit(board, running, 300, "active service after the restart")
    ended = board.must(f"journalctl -b -u {SERVICE} -o cat --no-pager --since @{stopped:.0f} | "
                       "grep -m1 'Main process exited' || true", 30)
    notes.append(f"SIGSTOP to PID {before['MainPID']}: watchdog timeout {fired[0] - stopped:.1f} s later "
                 f"(WatchdogSec={watchdog:.0f} as shipped, limit {watchdog + slack:.0f} s), restart scheduled at "
                 f"{scheduled[0] - stopped:.1f} s; PID {after['MainPID']} active again (READY "
                 f"{start_seconds(board):.0f} s after its start); NRestarts {back['NRestarts']}; {' '.join(ended)}")


def check_purge(cache: Path, notes: list[str]):
    board = SYSTEMD.installed()
    journal = board.run(f"SYSTEMD_COLORS=0 journalctl -b -u {SERVICE} -o short-monotonic --no-pager", 60)[1]
    (board.run_dir / "journal.txt").write_text("\n".join(journal) + "\n")
    output = board.must("DEBIAN_FRONTEND=noninteractive apt-get purge -y emotion-pi 2>&1", 300)
    (board.run_dir / "purge.txt").write_text("\n".join(output) + "\n")
    board.must(f"({FILES_LISTING}) > /tmp/after.txt", 120)
    left = board.run("diff /tmp/before.txt /tmp/after.txt | grep '^[<>]'", 30)[1]
    named = board.run("find / -xdev \\( -path /proc -o -path /sys -o -path /tmp -o -path /board \\) -prune -o "
                      "-name '*emotion*' -print", 120)[1]
    unit = unit_properties(board, "LoadState")["LoadState"]
    nodes = board.must("stat -c '%n %G %a' /dev/spidev0.0 /dev/gpiochip0", 10)
    problems = []
    if left:
        problems.append(f"changed: {', '.join(left)[:200]}")
    if named:
        problems.append(f"left: {', '.join(named)[:200]}")
    if unit != "not-found":
        problems.append(f"unit still {unit}")
    if any(not line.endswith(" root 600") for line in nodes):
        problems.append(f"nodes not back to root: {nodes}")
    if problems:
        raise CheckFailed("; ".join(problems))
    notes.append("after apt-get purge: the file system (apart from logs, caches, dpkg's backups and its and apt's "
                 "databases), users and groups as before the install (emotion-pi, spi and gpio gone); "
                 f"no file named *emotion*; unit not-found; {'; '.join(nodes)}")


CHECKS = {
    1: {
        "doctor": check_doctor,
        "camera": check_camera,
        "uart": check_uart,
        "unplug": check_unplug,
        "panel": check_panel,
        "face": check_face,
    },
    2: {
        "install": check_install,
        "status": check_status,
        "security": check_security,
        "devices": check_devices,
        "watchdog": check_watchdog,
        "purge": check_purge,
    },
}


def test(cache: Path, level: str, only: list[str]) -> int:
    passed = failed = 0
    started = time.monotonic()
    levels = [1, 2] if level == "all" else [int(level)]
    try:
        for name, check in [(name, check) for number in levels for name, check in CHECKS[number].items()]:
            if only and name not in only:
                continue
            notes: list[str] = []
            began = time.monotonic()
            try:
                check(cache, notes)
            except CheckFailed as err:
                failed += 1
                print(f"FAIL {name}: {err} ({time.monotonic() - began:.1f} s)", flush=True)
                continue
            except Exception as err:  # a broken check is reported as that check failing
                failed += 1
                print(f"FAIL {name}: {type(err).__name__}: {err} ({time.monotonic() - began:.1f} s)", flush=True)
                continue
            passed += 1
            print(f"ok {name} ({time.monotonic() - began:.1f} s)", flush=True)
            for note in notes:
                print(f"   {note}", flush=True)
    finally:
        SYSTEMD.close()
    print(f"(board checks took {time.monotonic() - started:.0f} s; details in {cache / 'runs'})")
    print(f"board: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["test", "demo", "frame"])
    parser.add_argument("--cache", type=Path, help="target/board")
    parser.add_argument("--level", choices=["1", "2", "all"], default="all", help="which board's checks")
    parser.add_argument("checks", nargs="*", help="only these checks")
    args = parser.parse_args()
    if args.command == "frame":
        yuyv_frame(Path(args.checks[0]), Path(args.checks[1]))
        return 0
    if args.command == "test":
        return test(args.cache, args.level, args.checks)
    return demo(args.cache)


def demo(cache: Path) -> int:
    """The firmware on the board with the smiling astronaut looped into the camera, the
    log on the UART and the screen on the SPI panel; shows both as the host reads them."""
    print("booting the board (Debian's arm64 kernel under qemu-system-aarch64)...", flush=True)
    board = Board(cache, "demo", trace=True)
    assert board.trace
    try:
        print(f"kernel {board.kernel}; looping a face into vivid's camera", flush=True)
        loop_face(board)
        board.must("sed 's/^fps = .*/fps = 5\\nformat = \"yuyv\"/' /etc/emotion-pi/config.toml > /tmp/demo.toml", 10)
        print("board$ emotion-pi run --config demo.toml --display st7789 --detect-every 1\n"
              "(slow: the CPU is emulated, the models take a minute or two to load, the panel's SPI bus "
              "is bit-banged on emulated GPIO)", flush=True)
        board.must("emotion-pi -v run --config /tmp/demo.toml --display st7789 --detect-every 1 "
                   "> /tmp/demo.out 2>&1 & echo $! > /tmp/firmware.pid", 10)
        board.wait_uart(lambda r: r.get("event") == "new", 600, "face")
        wait_for_quiet_trace(board.trace, 50_000_000, 5, 600)
        board.must("kill -INT $(cat /tmp/firmware.pid) && wait_for 300 sh -c '! kill -0 $(cat /tmp/firmware.pid)'",
                   40)
        _, output, _ = board.run("cat /tmp/demo.out", 20)
        for line in output:
            print(f"  board| {line}")
        time.sleep(0.5)
        print("emotion log, read on the host from the board's UART (PL011):")
        for line in board.uart_lines():
            print(f"  uart| {line}")
    finally:
        board.close()
    decoded = panel.decode_trace(board.trace)
    screen = panel.replay_st7789(decoded.transfers).visible(240, 240)
    out = board.run_dir / "panel.png"
    panel.write_png(out, 240, 240, screen.to_rgb888())
    print(f"the panel, decoded from {decoded.events} pin changes ({decoded.bytes} SPI bytes): {out}")
    print(terminal_picture(screen))
    return 0


def terminal_picture(picture: "panel.Picture", step: int = 4) -> str:
    """The picture in 24-bit colour half blocks, one character per step x 2*step pixels."""
    rgb = picture.to_rgb888()
    lines = []
    for y in range(0, picture.height - step, 2 * step):
        cells = []
        for x in range(0, picture.width, step):
            top = 3 * (y * picture.width + x)
            bottom = 3 * ((y + step) * picture.width + x)
            cells.append("\x1b[38;2;{};{};{}m\x1b[48;2;{};{};{}m\u2580".format(*rgb[top:top + 3], *rgb[bottom:bottom + 3]))
        lines.append("".join(cells) + "\x1b[0m")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
