#!/bin/sh
# Builds the shuzhuan-agent Debian package with dpkg-deb (no cargo-deb
# needed), from the [package.metadata.deb] table of agent/Cargo.toml.
#   deploy/deb/build.sh                      # cargo build --release, then target/debian/shuzhuan-agent_<v>_amd64.deb
#   deploy/deb/build.sh --target aarch64-unknown-linux-gnu   # cross: ..._arm64.deb
#   deploy/deb/build.sh --binary FILE --compress none        # package a binary built elsewhere
# Needs python3 >= 3.11 (tomllib), dpkg-deb, readelf and strip (binutils;
# binutils-<triple> for a cross target). docs/operations.md, "Debian package".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
if ! "$python" -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "deploy/deb/build.sh: needs python3 >= 3.11 (tomllib); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
exec "$python" "$here/build.py" "$@"
