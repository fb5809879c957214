#!/usr/bin/env bash
# House rules the compiler does not check: every .rs file opens with a `//!`
# line saying what it is for.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r f; do
  if ! head -n 5 "$f" | grep -q '^//!'; then
    echo "tidy: $f has no //! module doc in its first lines"
    bad=1
  fi
done < <(git ls-files '*.rs')
exit $bad
