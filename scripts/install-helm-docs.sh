#!/usr/bin/env bash
# Build helm-docs (which writes charts/kube-autorollout/README.md from values.yaml and README.md.gotmpl)
# from its Go module and cache it under ~/.cache/kube-autorollout/bin/helm-docs-<version>/, like the
# cluster binaries. A second run builds nothing. Prints the binary's directory on its last line.
#
#   HELM_DOCS_VERSION  helm-docs release (default below)
#   KAR_CACHE          cache root (default ~/.cache/kube-autorollout)
set -euo pipefail

HELM_DOCS_VERSION="${HELM_DOCS_VERSION:-v1.14.2}"
CACHE="${KAR_CACHE:-$HOME/.cache/kube-autorollout}"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0

log() { printf '[install-helm-docs] %s\n' "$*" >&2; }

[[ "$HELM_DOCS_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
  log "HELM_DOCS_VERSION must look like v1.14.2, got '$HELM_DOCS_VERSION'"; exit 2; }
out="$CACHE/bin/helm-docs-$HELM_DOCS_VERSION"
scratch="$CACHE/build/helm-docs-$HELM_DOCS_VERSION"
mkdir -p "$CACHE/bin" "$CACHE/build"

if [[ ! -x "$out/helm-docs" ]]; then
  # One build at a time: a concurrent run waits for the first, then finds the cache.
  exec {lock_fd}>"$CACHE/build/helm-docs-$HELM_DOCS_VERSION.lock"
  flock -n "$lock_fd" || { log "another run is building helm-docs, waiting"; flock "$lock_fd"; }
  if [[ ! -x "$out/helm-docs" ]]; then
    log "helm-docs $HELM_DOCS_VERSION: building (about 2 minutes with empty Go caches)"
    started=$SECONDS
    # Installed into a scratch dir first, so an interrupted build never looks cached.
    GOBIN="$scratch" go install -ldflags "-s -w -X main.version=${HELM_DOCS_VERSION#v}" \
      "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
    mkdir -p "$out" && mv "$scratch/helm-docs" "$out/"
    log "helm-docs $HELM_DOCS_VERSION: built in $((SECONDS - started))s"
  fi
  exec {lock_fd}>&-
else
  log "helm-docs $HELM_DOCS_VERSION: cached in $out"
fi
# The last line is machine-readable: the directory holding the binary.
echo "$out"
