#!/usr/bin/env bash
# Checks a built emotion-pi .deb: its control fields, that it holds the files the
# service needs, that the config is a conffile, and that systemd accepts its unit.
#
#   tools/check_deb.sh target/aarch64-unknown-linux-gnu/debian/emotion-pi_0.1.0-1_arm64.deb arm64
set -euo pipefail
deb=$1
arch=$2
fail() { echo "check_deb: $deb: $*" >&2; exit 1; }

info=$(dpkg-deb -I "$deb")
echo "$info"
grep -q "^ Package: emotion-pi$" <<<"$info" || fail "package name"
grep -q "^ Architecture: $arch$" <<<"$info" || fail "architecture is not $arch"
grep -q "^ Depends: .*adduser" <<<"$info" || fail "postinst needs adduser, not in Depends"
for script in postinst prerm postrm; do
    grep -qE "[0-9]+ lines +\*? +$script( |$)" <<<"$info" || fail "no $script maintainer script"
done
[ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "architecture field"

contents=$(dpkg-deb -c "$deb")
echo "$contents"
for path in ./usr/bin/emotion-pi \
    ./usr/share/emotion-pi/models/emotion_mobilenet_int8.onnx \
    ./usr/share/emotion-pi/models/blazeface/face_detection_front_128x128_barracuda.onnx \
    ./usr/share/emotion-pi/models/blazeface/face_detection_back_256x256_barracuda.onnx \
    ./usr/share/emotion-pi/models/blazeface/LICENSE \
    ./etc/emotion-pi/config.toml; do
    grep -q " $path$" <<<"$contents" || fail "missing $path"
done
grep -qE " \./(usr/)?lib/systemd/system/emotion-pi\.service$" <<<"$contents" || fail "missing the systemd unit"
# Plain Debian gives spidev and gpiochip nodes to root alone; the package's rules give them
# to the spi and gpio groups, as Raspberry Pi OS does.
grep -q " \./usr/lib/udev/rules.d/60-emotion-pi\.rules$" <<<"$contents" || fail "missing the udev rules"
grep -E " \./usr/bin/emotion-pi$" <<<"$contents" | grep -q "^-rwxr-xr-x" || fail "binary not executable"
# Stripped: with its line tables the binary is about 100 MB, too big for a small SD card.
size=$(grep -E " \./usr/bin/emotion-pi$" <<<"$contents" | awk '{print $3}')
[ "$size" -lt 40000000 ] || fail "binary is $size bytes: not stripped?"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -R "$deb" "$root"
grep -qx "/etc/emotion-pi/config.toml" "$root/DEBIAN/conffiles" || fail "config.toml is not a conffile"
grep -q "adduser --system" "$root/DEBIAN/postinst" || fail "postinst does not create the user"
grep -q "systemctl\|deb-systemd" "$root/DEBIAN/postinst" || fail "postinst does not enable the unit"
grep -q 'addgroup --system "$group"' "$root/DEBIAN/postinst" || fail "postinst does not create the spi and gpio groups"
grep -q "udevadm trigger" "$root/DEBIAN/postinst" || fail "postinst does not apply the udev rules to existing nodes"
grep -q "deluser --system" "$root/DEBIAN/postrm" || fail "postrm does not remove the user on purge"
rules="$root/usr/lib/udev/rules.d/60-emotion-pi.rules"
for subsystem in spidev gpio; do
    grep -qE "^SUBSYSTEM==\"$subsystem\".*GROUP=\"(spi|gpio)\", MODE=\"0660\"$" "$rules" || fail "no udev rule for $subsystem"
done
for script in postinst prerm postrm; do
    sh -n "$root/DEBIAN/$script" || fail "$script is not valid sh"
done
[ "$(head -c 4 "$root/usr/bin/emotion-pi" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "binary is not ELF"

if command -v systemd-analyze >/dev/null; then
    unit=$(find "$root" -name emotion-pi.service -path "*systemd/system*")
    # verify insists that ExecStart exists on this machine: point it into the unpacked tree.
    sed "s#/usr/bin/emotion-pi#$root/usr/bin/emotion-pi#" "$unit" >"$root/emotion-pi.service"
    systemd-analyze verify "$root/emotion-pi.service"
    echo "check_deb: systemd-analyze verify: ok"
else
    echo "check_deb: systemd-analyze not found; unit not verified"
fi
echo "check_deb: $deb: ok"
