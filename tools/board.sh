#!/usr/bin/env bash
# The emulated Pi board: the aarch64 firmware on Debian's own arm64 kernel under
# qemu-system-aarch64, with real kernel drivers behind every device node it opens
# (vivid camera, spi-gpio + spidev panel bus on the PL061 GPIO lines, PL011 UART).
#
#   tools/board.sh test [--level 1|2] [CHECK...]
#                          build what is missing, run the checks, exit 0 if all pass
#   tools/board.sh shell   boot the board and leave you at its shell (Ctrl-A X quits qemu)
#   tools/board.sh demo    run the firmware on the board; show the log and the decoded panel
#
# Level 1 boots a busybox initramfs holding the firmware; level 2 boots a Debian 12 root
# file system with systemd as PID 1 from a disk image and installs the .deb with apt.
# Everything comes from Debian packages (apt); downloads and built pieces are cached in
# target/board/, so a second run starts at once. README: "Try it without a Pi".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=${BOARD_CACHE:-$ROOT/target/board}
TARGET=aarch64-unknown-linux-gnu
FIRMWARE=$ROOT/target/$TARGET/release/emotion-pi
HERE=$ROOT/tools/board
DEB=$ROOT/target/emotion-pi_arm64.deb
# The modules the checks load, virtio for the console, and the disk and ext4 that level 2
# boots from; their dependencies follow from modules.dep.
MODULES="vivid spi-gpio virtio_mmio virtio_console virtio_blk ext4 crc32c_generic"
# Level 2's root file system: systemd, udev and D-Bus (systemd-run talks to systemd through
# it), adduser for the package's postinst, kmod for modprobe, mawk for the guest's helpers.
ROOTFS_PACKAGES="systemd,systemd-sysv,udev,dbus,adduser,kmod,mawk"
DEBIAN_MIRRORS=("deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main")

say() { printf 'board: %s\n' "$*" >&2; }

host_tools() {
  local missing=()
  command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
  command -v dtc >/dev/null || missing+=(device-tree-compiler)
  command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || missing+=(kmod)
  command -v cpio >/dev/null || missing+=(cpio)
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  command -v python3 >/dev/null || missing+=(python3)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
  [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] || missing+=(qemu-user-static)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  export PATH=$PATH:/usr/sbin:/sbin
}

# The arm64 packages of the board, downloaded once into target/board/debs.
debs() {
  mkdir -p "$CACHE/debs"
  if [ -f "$CACHE/debs/done" ]; then return; fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  if ! apt-cache show linux-image-arm64:arm64 >/dev/null 2>&1; then apt-get update -qq; fi
  local kernel
  kernel=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$kernel" ] || { say "cannot resolve Debian's arm64 kernel package"; exit 1; }
  say "downloading $kernel, busybox-static, libc6, libgcc-s1 (arm64)"
  # apt's sandbox user cannot write into target/; download in a folder it may use.
  local tmp
  tmp=$(mktemp -d)
  chmod 777 "$tmp"
  (cd "$tmp" && apt-get download -q "$kernel" busybox-static:arm64 libc6:arm64 libgcc-s1:arm64 >/dev/null)
  mv "$tmp"/*.deb "$CACHE/debs/"
  rmdir "$tmp"
  touch "$CACHE/debs/done"
}

# vmlinuz and the few modules the board needs, with modules.dep made by depmod -b.
kernel() {
  if [ -f "$CACHE/kernel/vmlinuz" ] && [ "$(cat "$CACHE/kernel/modules.list" 2>/dev/null)" = "$MODULES" ]; then
    return
  fi
  say "unpacking the kernel and picking modules: $MODULES"
  local tmp kver
  tmp=$(mktemp -d)
  dpkg-deb -x "$CACHE"/debs/linux-image-*.deb "$tmp"
  kver=$(ls "$tmp/lib/modules")
  depmod -b "$tmp" "$kver"
  rm -rf "$CACHE/kernel"
  mkdir -p "$CACHE/kernel/root/lib/modules/$kver"
  cp "$tmp"/boot/vmlinuz-* "$CACHE/kernel/vmlinuz.new"
  local dep="$tmp/lib/modules/$kver/modules.dep" files=()
  for module in $MODULES; do
    local line
    line=$(grep -E "/${module//_/[-_]}\.ko:" "$dep") || { say "module $module not in $kver"; exit 1; }
    for file in ${line/:/}; do files+=("$file"); done
  done
  for file in $(printf '%s\n' "${files[@]}" | sort -u); do
    mkdir -p "$CACHE/kernel/root/lib/modules/$kver/$(dirname "$file")"
    cp "$tmp/lib/modules/$kver/$file" "$CACHE/kernel/root/lib/modules/$kver/$file"
  done
  cp "$tmp/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$CACHE/kernel/root/lib/modules/$kver/"
  depmod -b "$CACHE/kernel/root" "$kver"
  rm -rf "$tmp"
  echo "$MODULES" >"$CACHE/kernel/modules.list"
  mv "$CACHE/kernel/vmlinuz.new" "$CACHE/kernel/vmlinuz"
}

# The virt board's own device tree plus a bit-banged SPI bus on PL061 lines (tools/board/spi.dts).
device_tree() {
  if [ -f "$CACHE/board.dtb" ] && [ "$CACHE/board.dtb" -nt "$HERE/spi.dts" ]; then return; fi
  local tmp phandle
  tmp=$(mktemp -d)
  qemu-system-aarch64 -M "virt,dumpdtb=$tmp/virt.dtb" -cpu cortex-a72 -smp 2 -m 1024 -display none >/dev/null 2>&1
  dtc -q -I dtb -O dts "$tmp/virt.dtb" >"$tmp/virt.dts"
  phandle=$(awk '/pl061@/ {inside=1} inside && /phandle/ {gsub(/[<>;]/, "", $3); print $3; exit}' "$tmp/virt.dts")
  [ -n "$phandle" ] || { say "no PL061 in qemu's virt device tree"; exit 1; }
  sed "s/GPIO_CONTROLLER/$phandle/g" "$HERE/spi.dts" >>"$tmp/virt.dts"
  dtc -q -I dts -O dtb -o "$CACHE/board.dtb.new" "$tmp/virt.dts"
  rm -rf "$tmp"
  mv "$CACHE/board.dtb.new" "$CACHE/board.dtb"
}

# busybox, the C library and the modules, packed once; the firmware goes in a second archive.
base_initramfs() {
  local out="$CACHE/base.cpio.gz"
  if [ -f "$out" ] && [ "$out" -nt "$HERE/init" ] && [ "$out" -nt "$CACHE/kernel/modules.list" ]; then return; fi
  say "packing the base initramfs"
  local tmp
  tmp=$(mktemp -d)
  for deb in "$CACHE"/debs/busybox-static_*.deb "$CACHE"/debs/libc6_*.deb "$CACHE"/debs/libgcc-s1_*.deb; do
    dpkg-deb -x "$deb" "$tmp"
  done
  rm -rf "$tmp/usr/share/doc" "$tmp/usr/share/man" "$tmp/usr/share/lintian" "$tmp/usr/lib/aarch64-linux-gnu/gconv"
  cp -a "$CACHE/kernel/root/lib/modules" "$tmp/lib/modules"
  mkdir -p "$tmp"/{proc,sys,dev,tmp,run,etc,sbin,usr/bin,usr/sbin}
  cp "$HERE/init" "$tmp/init"
  chmod 755 "$tmp/init"
  printf 'root:x:0:\nvideo:x:44:\ndialout:x:20:\nspi:x:999:\ngpio:x:997:\n' >"$tmp/etc/group"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tmp/etc/passwd"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.new"
  rm -rf "$tmp"
  mv "$out.new" "$out"
}

# The frame feeder for vivid's video loop (tools/board/vivid_feed.c), static for busybox's world.
feeder() {
  if [ -f "$CACHE/vivid_feed" ] && [ "$CACHE/vivid_feed" -nt "$HERE/vivid_feed.c" ]; then return; fi
  aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -o "$CACHE/vivid_feed" "$HERE/vivid_feed.c"
}

# The arm64 firmware, its models, a face picture and the board's config file.
app_initramfs() {
  local out="$CACHE/app.cpio.gz"
  if [ -f "$out" ] && [ "$out" -nt "$FIRMWARE" ] && [ "$out" -nt "$HERE/board.toml" ] \
    && [ "$out" -nt "$HERE/guest.sh" ] && [ "$out" -nt "$CACHE/vivid_feed" ]; then return; fi
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/usr/bin" "$tmp/usr/share/emotion-pi" "$tmp/etc/emotion-pi" "$tmp/board"
  aarch64-linux-gnu-strip -o "$tmp/usr/bin/emotion-pi" "$FIRMWARE"
  cp "$CACHE/vivid_feed" "$tmp/usr/bin/vivid_feed"
  # The smiling astronaut as one 640x480 YUYV camera frame, for the video loop.
  python3 "$HERE/board.py" frame "$ROOT/tests/fixtures/astronaut.png" "$tmp/board/astronaut.yuyv"
  cp -r "$ROOT/models" "$tmp/usr/share/emotion-pi/models"
  cp "$HERE/board.toml" "$tmp/etc/emotion-pi/config.toml"
  cp "$HERE/guest.sh" "$tmp/board/guest.sh"
  cp "$ROOT/tests/fixtures/astronaut.png" "$ROOT/tests/fixtures/grace_hopper.jpg" "$tmp/board/"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.new"
  rm -rf "$tmp"
  mv "$out.new" "$out"
}

# Level 2's disk: Debian 12 arm64 with systemd, made once by mmdebstrap. The packages'
# maintainer scripts run under qemu-user-static through binfmt_misc; the registration is
# removed again if this made it.
rootfs() {
  local out="$CACHE/rootfs.img" stamp
  # Remade when the package list, the board's files in level2/ or the kernel's modules change.
  stamp="$ROOTFS_PACKAGES $( (cat "$HERE"/level2/*; ls "$CACHE/kernel/root/lib/modules"; echo "$MODULES") \
    | sha256sum | cut -c1-16)"
  if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
  say "making the level-2 root file system (mmdebstrap, Debian 12 arm64: $ROOTFS_PACKAGES)"
  local binfmt=/proc/sys/fs/binfmt_misc registered="" tmp
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  if [ ! -e "$binfmt/qemu-aarch64" ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
    registered=1
  fi
  tmp=$(mktemp -d)
  local status=0
  mmdebstrap --mode=root --variant=minbase --architectures=arm64 --include="$ROOTFS_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tmp/root" "${DEBIAN_MIRRORS[@]}" >"$CACHE/mmdebstrap.log" 2>&1 || status=$?
  if [ -n "$registered" ]; then echo -1 >"$binfmt/qemu-aarch64"; fi
  if [ $status -ne 0 ]; then
    rm -rf "$tmp"
    say "mmdebstrap failed ($status); see $CACHE/mmdebstrap.log"
    exit 1
  fi
  local root="$tmp/root" level2="$HERE/level2"
  # The excludes only kept the image small; the package installed later gets all its files.
  rm -f "$root/etc/dpkg/dpkg.cfg.d/99mmdebstrap"
  cp -a "$CACHE/kernel/root/lib/modules" "$root/usr/lib/"
  install -m 644 "$level2/board-serve.service" "$root/etc/systemd/system/"
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -s ../board-serve.service "$root/etc/systemd/system/multi-user.target.wants/"
  install -m 644 "$level2/board.conf" "$root/etc/modules-load.d/"
  install -m 644 "$level2/vivid.conf" "$root/etc/modprobe.d/"
  install -m 644 "$level2/90-board-serial0.rules" "$root/etc/udev/rules.d/"
  # hvc1 is the host's channel; hvc0 (the console) and the UART keep no login prompt.
  for unit in serial-getty@hvc0.service serial-getty@ttyAMA0.service getty@tty1.service; do
    ln -s /dev/null "$root/etc/systemd/system/$unit"
  done
  echo board >"$root/etc/hostname"
  # Room for the package and the journal beside the system.
  local size
  size=$(du -sm "$root" | cut -f1)
  mkfs.ext4 -q -F -L board-root -d "$root" "$out.new" "$((size + 384))M" >/dev/null
  rm -rf "$tmp"
  mv "$out.new" "$out"
  echo "$stamp" >"$out.stamp"
}

# Level 2's second disk, made each run: the .deb, the guest's helpers and the board's config.
payload() {
  command -v cargo-deb >/dev/null || { say "level 2 needs cargo-deb: cargo install cargo-deb"; exit 1; }
  say "cargo deb --no-build --strip --target $TARGET"
  cargo deb --no-build --strip --target "$TARGET" --output "$DEB" >/dev/null
  local tmp
  tmp=$(mktemp -d)
  cp "$DEB" "$HERE/guest.sh" "$HERE/board.toml" "$tmp/"
  mkfs.ext4 -q -F -L payload -d "$tmp" "$CACHE/payload.img" "$(($(du -sm "$tmp" | cut -f1) + 16))M" >/dev/null
  rm -rf "$tmp"
}

firmware() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then rustup target add "$TARGET"; fi
  say "cargo build --release --target $TARGET"
  cargo build --release --target "$TARGET" --quiet
}

# What level 1 (initrd.img) or level 2 (rootfs.img, payload.img) boots; both share the
# kernel, the device tree and the base initramfs.
prepare() {
  local level=$1
  host_tools
  debs
  kernel
  device_tree
  base_initramfs
  firmware
  if [ "$level" != 2 ]; then
    feeder
    app_initramfs
    cat "$CACHE/base.cpio.gz" "$CACHE/app.cpio.gz" >"$CACHE/initrd.img"
  fi
  if [ "$level" != 1 ]; then
    rootfs
    payload
  fi
}

[ "${BOARD_SOURCED:-}" = 1 ] && return 0
command=${1:-test}
shift || true
case "$command" in
  test)
    level=all
    if [ "${1:-}" = --level ]; then
      level=${2:?--level 1 or 2}
      shift 2
    fi
    prepare "$level"
    exec python3 "$HERE/board.py" test --level "$level" "$@" --cache "$CACHE"
    ;;
  demo)
    prepare 1
    exec python3 "$HERE/board.py" demo --cache "$CACHE"
    ;;
  shell)
    prepare 1
    say "booting; the board's shell follows (Ctrl-A X quits)"
    exec qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nodefaults -display none \
      -kernel "$CACHE/kernel/vmlinuz" -initrd "$CACHE/initrd.img" -dtb "$CACHE/board.dtb" \
      -append "console=hvc0 quiet board.mode=shell" \
      -serial "file:$CACHE/shell-uart.log" \
      -chardev stdio,id=console,mux=on,signal=off -device virtio-serial-device \
      -device virtconsole,chardev=console -mon chardev=console,mode=readline
    ;;
  *)
    echo "usage: tools/board.sh test [--level 1|2] [CHECK...] | shell | demo" >&2
    exit 2
    ;;
esac
