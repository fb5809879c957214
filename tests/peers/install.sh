#!/usr/bin/env bash
# Installs the external peers the test suite talks to, when they are missing:
# Debian packages, a Python venv at .venv, Node packages under tests/peers/node.
# Idempotent: a second run on a prepared machine installs nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

# Debian packages: name of the package, then a command it provides (or, for
# data-only packages, an absolute path of a file it installs).
apt_wanted=(
  "socat socat"
  "mbpoll mbpoll"
  "prometheus promtool"
  "victoria-metrics victoria-metrics"
  "chromium chromium"
  "systemd systemd-analyze"
  "docker-compose docker-compose"
  "openssl openssl"
  "curl curl"
  "fonts-wqy-microhei /usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
  "dpkg-dev dpkg-shlibdeps"
  "binutils readelf"
)
missing=()
for pair in "${apt_wanted[@]}"; do
  pkg=${pair%% *}; cmd=${pair##* }
  case $cmd in
    /*) [ -e "$cmd" ] || missing+=("$pkg") ;;
    *) command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/bin/$cmd" ] || missing+=("$pkg") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: apt packages ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python peers in a project-local venv.
py_wanted=(pymodbus==3.16.1 pyserial==3.5 asyncua==2.1.0 openpyxl==3.1.5)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import pymodbus, serial, asyncua, cryptography, openpyxl' 2>/dev/null \
   || [ "$(.venv/bin/python -c 'import pymodbus; print(pymodbus.__version__)')" != "3.16.1" ]; then
  echo "install: pip ${py_wanted[*]}"
  .venv/bin/pip install -q --disable-pip-version-check "${py_wanted[@]}"
fi

# Node peers, pinned by tests/peers/node/package-lock.json; reinstalled when
# the lock file changes (a stamp of its hash is kept in node_modules).
if [ -f tests/peers/node/package-lock.json ]; then
  lock_hash=$(sha256sum tests/peers/node/package-lock.json | cut -d' ' -f1)
  stamp=tests/peers/node/node_modules/.shuzhuan-lock-sha256
  if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
    echo "install: npm ci in tests/peers/node"
    (cd tests/peers/node && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" >"$stamp"
  fi
fi
echo "install: peers ready"
