#!/bin/sh
# The board's side of tools/board/board.py, run by /init on the virtio console (hvc0):
# each line read is a shell command; after it, "@@rc N" gives its exit status.
# Helpers below are for those commands.

# Prints FILE between "@@file FILE" and "@@eof", base64-encoded, for the host to save.
dumpfile() {
  echo "@@file $1"
  base64 "$1"
  echo "@@eof"
}

# Milliseconds since boot.
uptime_ms() {
  awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

# Waits up to $1 tenths of a second for the command in the other arguments to succeed.
wait_for() {
  limit=$1
  shift
  n=0
  until "$@"; do
    n=$((n + 1))
    [ $n -ge "$limit" ] && return 1
    sleep 0.1
  done
}

# Plain log lines for the host to match.
export RUST_LOG_STYLE=never

if [ "$1" = serve ]; then
  stty -echo -onlcr 2>/dev/null
  echo "@@ready $(uname -r)"
  while IFS= read -r line; do
    eval "$line"
    echo "@@rc $?"
  done
fi
