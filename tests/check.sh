#!/usr/bin/env bash
# The README's test command (via `make test`): notebooks clean, wsss_nb/ exported from them, then pytest.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE  # idle OpenMP threads sleep instead of spinning: several test processes share few cores
cd "$(dirname "$0")/.."
snapshot() { git ls-files -co --exclude-standard -- nbs wsss_nb | sort | xargs -d '\n' sha1sum 2>/dev/null; }
before=$(snapshot)
nbdev_clean >/dev/null
if [ "$before" != "$(snapshot)" ]; then
  echo "FAIL: nbdev_clean changed the notebooks (run nbdev_clean and commit):"; git status --short -- nbs; exit 1
fi
nbdev_export
if [ "$before" != "$(snapshot)" ]; then
  echo "FAIL: wsss_nb/ does not match the notebooks (run nbdev_export and commit; never edit wsss_nb/*.py by hand):"; git status --short -- wsss_nb; exit 1
fi
echo "notebooks clean, library in sync with them"
# in parallel, a process per core up to 4 (each makes its own copy of the tiny runs that tests share); `bash tests/check.sh -n 0`: one process
python -m pytest -q -n auto --maxprocesses 4 --durations 15 tests "$@"  # (the 15 slowest printed: the suite is kept well under 15 minutes on 2 cores)
