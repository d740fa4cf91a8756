#!/usr/bin/env bash
# Builds the Debian package for a Pi, copies it over ssh and installs it there.
#
#   tools/deploy.sh pi@raspberrypi.local            # 64-bit Raspberry Pi OS (arm64)
#   tools/deploy.sh --armhf pi@raspberrypi.local    # 32-bit Raspberry Pi OS (armhf)
#
# Needs the cross set-up of README "Put it on a Pi", `cargo install cargo-deb`,
# and an ssh login on the Pi that may run sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
if [ "${1:-}" = "--armhf" ]; then
    target=armv7-unknown-linux-gnueabihf
    shift
fi
if [ $# -ne 1 ]; then
    echo "usage: $0 [--armhf] USER@HOST" >&2
    exit 2
fi
host=$1

# --strip: the release profile keeps line tables (about 100 MB), which a Pi does not need.
package=$(cargo deb --target "$target" --strip | tail -n 1)
if [ ! -f "$package" ]; then
    echo "deploy: cargo deb did not report a package file (got: $package)" >&2
    exit 1
fi
echo "deploy: installing $(basename "$package") on $host"
scp "$package" "$host:/tmp/"
# apt resolves the dependencies; a changed /etc/emotion-pi/config.toml is kept.
ssh "$host" "sudo apt-get install -y /tmp/$(basename "$package") && rm /tmp/$(basename "$package") \
    && systemctl --no-pager status emotion-pi | head -n 5 && emotion-pi doctor"
