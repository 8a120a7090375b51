#!/usr/bin/env bash
# The e2e suite on each Kubernetes release given, one release after the other: build (or find cached) its
# binaries, run `pytest -m e2e` against it, then print one line per release: the build's outcome, pytest's
# summary and the wall time of the run. Logs go to build/e2e-versions/<release>.{build,e2e}.log.
# Exit code 1 when a release did not build or a test failed on it.
#
#   scripts/e2e-versions.sh v1.37.2 v1.36.3 ...   (`make test-e2e-versions` passes KUBE_VERSIONS)
#   PYTEST  the pytest to run (default .venv/bin/pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTEST="${PYTEST:-.venv/bin/pytest}"
LOGS=build/e2e-versions
(($# > 0)) || { echo "usage: $0 RELEASE..." >&2; exit 2; }
mkdir -p "$LOGS"

results=() failed=0
for release in "$@"; do
  release="v${release#v}"
  echo "[e2e-versions] $release: building (or finding cached) the cluster binaries" >&2
  started=$SECONDS
  if ! KUBE_VERSION="$release" scripts/install-cluster-binaries.sh >"$LOGS/$release.build.log" 2>&1; then
    results+=("$release | build failed: $(grep -v '^go: downloading' "$LOGS/$release.build.log" | tail -1)")
    failed=1
    continue
  fi
  build=$((SECONDS - started))
  echo "[e2e-versions] $release: running the e2e suite (log: $LOGS/$release.e2e.log)" >&2
  started=$SECONDS
  rc=0
  KUBE_VERSION="$release" "$PYTEST" -m e2e -q -p no:cacheprovider >"$LOGS/$release.e2e.log" 2>&1 || rc=$?
  # pytest's closing line, e.g. "212 passed, 1 skipped in 301.52s (0:05:01)".
  summary="$(grep -E '^=* ?[0-9]+ (passed|failed|error)|no tests ran' "$LOGS/$release.e2e.log" | tail -1 \
    | sed -E 's/^=+ //; s/ =+$//')"
  ((rc == 0)) || failed=1
  results+=("$release | build ${build}s | pytest exit $rc: ${summary:-no summary line} | wall $((SECONDS - started))s")
  while read -r line; do results+=("  $line"); done < <(grep -E '^(FAILED|ERROR) ' "$LOGS/$release.e2e.log" || true)
done

printf '%s\n' "${results[@]}"
exit "$failed"
