#!/usr/bin/env bash
# Build promtool (which checks and unit-tests the chart's PrometheusRule) from the Go module of
# prometheus/prometheus and cache it under ~/.cache/kube-autorollout/bin/promtool-<version>/, like the
# cluster binaries. A second run builds nothing. Prints the binary's directory on its last line.
# The first build takes several minutes (a large module graph): it runs under `nice`.
#
#   PROMTOOL_VERSION  prometheus module version (default below)
#   KAR_CACHE         cache root (default ~/.cache/kube-autorollout)
set -euo pipefail

PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
CACHE="${KAR_CACHE:-$HOME/.cache/kube-autorollout}"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0

log() { printf '[install-promtool] %s\n' "$*" >&2; }

[[ "$PROMTOOL_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
  log "PROMTOOL_VERSION must look like v0.316.0, got '$PROMTOOL_VERSION'"; exit 2; }
out="$CACHE/bin/promtool-$PROMTOOL_VERSION"
scratch="$CACHE/build/promtool-$PROMTOOL_VERSION"
mkdir -p "$CACHE/bin" "$CACHE/build"

if [[ ! -x "$out/promtool" ]]; then
  # One build at a time: a concurrent run waits for the first, then finds the cache.
  exec {lock_fd}>"$CACHE/build/promtool-$PROMTOOL_VERSION.lock"
  flock -n "$lock_fd" || { log "another run is building promtool, waiting"; flock "$lock_fd"; }
  if [[ ! -x "$out/promtool" ]]; then
    log "promtool $PROMTOOL_VERSION: building (several minutes with empty Go caches)"
    started=$SECONDS
    # Installed into a scratch dir first, so an interrupted build never looks cached.
    GOBIN="$scratch" nice go install -ldflags "-s -w" \
      "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
    mkdir -p "$out" && mv "$scratch/promtool" "$out/"
    log "promtool $PROMTOOL_VERSION: built in $((SECONDS - started))s"
  fi
  exec {lock_fd}>&-
else
  log "promtool $PROMTOOL_VERSION: cached in $out"
fi
# The last line is machine-readable: the directory holding the binary.
echo "$out"
