#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs missing peers, checks
# formatting and lints, runs every test, and ends with one summary line.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TERM_COLOR=never
export SHUZHUAN_ROOT="$root"
export SHUZHUAN_PYTHON="$root/.venv/bin/python"
export SHUZHUAN_NODE_MODULES="$root/tests/peers/node/node_modules"
export SHUZHUAN_ARTIFACTS="$root/artifacts"
mkdir -p "$SHUZHUAN_ARTIFACTS"

failed=()
step() {
  local name=$1; shift
  echo "==> $name"
  local t0=$SECONDS
  if "$@"; then
    echo "==> $name: ok ($((SECONDS - t0)) s)"
  else
    echo "==> $name: FAILED ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}

step "install peers" bash tests/peers/install.sh
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q
if command -v cargo-nextest >/dev/null 2>&1; then
  step "tests" cargo nextest run --workspace --locked --no-fail-fast
else
  step "tests" cargo test --workspace --locked --no-fail-fast
fi
step "module docs" bash tests/tidy.sh

if [ ${#failed[@]} -eq 0 ]; then
  echo "tests/run.sh: all steps passed"
  exit 0
fi
echo "tests/run.sh: FAILED steps: ${failed[*]}"
exit 1
