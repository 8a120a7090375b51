#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager, kubelet, kubectl and helm from their Go modules
# (through the Go module proxy) and cache them under ~/.cache/kube-autorollout/bin/: etcd-<version>/,
# kubernetes-<version>/ (the Kubernetes commands together) and helm-<version>/.
# A cache from before the kubelet (the real node, tests/harness/node.py) was added gets just that one.
# A second run with the same versions builds nothing. Prints the bin directories on its last line.
#
#   --newest-minors N  build nothing; print the newest patch release of each of the N newest stable
#                      Kubernetes minors the module proxy serves, newest first (one per line)
#
#   KUBE_VERSION  Kubernetes release to build, v1.37.2 or 1.37.2 (default below: newest stable the
#                 proxy served when pinned)
#   ETCD_VERSION  etcd server release
#   HELM_VERSION  helm release
#   KAR_CACHE     cache root (default ~/.cache/kube-autorollout)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${KAR_CACHE:-$HOME/.cache/kube-autorollout}"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0

log() { printf '[install-cluster-binaries] %s\n' "$*" >&2; }

# Stable releases only (no -alpha/-beta/-rc); `sort -V` orders 1.9 before 1.10.
newest_minors() {
  (cd / && go list -m -versions k8s.io/kubernetes) | tr ' ' '\n' | grep -E '^v1\.[0-9]+\.[0-9]+$' | sort -V \
    | awk -F. '{ newest[$1 "." $2] = $0; if (!seen[$1 "." $2]++) order[++n] = $1 "." $2 }
               END { for (i = n; i > n - count && i > 0; i--) print newest[order[i]] }' count="$1"
}

if [[ "${1:-}" == --newest-minors ]]; then
  [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { log "usage: $0 [--newest-minors N]"; exit 2; }
  newest_minors "$2"; exit
fi
(($# == 0)) || { log "usage: $0 [--newest-minors N]"; exit 2; }
[[ "$KUBE_VERSION" =~ ^v?1\.[0-9]+\.[0-9]+$ ]] || { log "KUBE_VERSION must look like v1.37.2, got '$KUBE_VERSION'"; exit 2; }
KUBE_VERSION="v${KUBE_VERSION#v}"
mkdir -p "$CACHE/bin" "$CACHE/build"

# One build per component and version at a time: a second run waits for the first, then finds the cache.
lock() {
  exec {lock_fd}>"$CACHE/build/$1.lock"
  flock -n "$lock_fd" || { log "$1: another run is building it, waiting"; flock "$lock_fd"; }
}
unlock() { exec {lock_fd}>&-; }

# go build prints nothing while compiling; a heartbeat keeps CI logs (and people) informed.
build_with_heartbeat() {
  local what="$1" started=$SECONDS pid rc=0
  shift
  (
    nap=
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while :; do
      sleep 60 & nap=$!
      wait "$nap"
      log "$what: still building ($((SECONDS - started))s)"
    done
  ) &
  pid=$!
  "$@" || rc=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  if ((rc != 0)); then log "$what: build failed (exit $rc)"; return "$rc"; fi
  log "$what: built in $((SECONDS - started))s"
}

# Staging modules of k8s.io/kubernetes are published as k8s.io/<name> v0.<minor>.<patch>.
staging_version() { echo "v0.${1#v1.}"; }

# Prints "<module> <version>" for each staging module: the release's own version or, where the module
# proxy does not serve that one, the newest earlier patch of the same minor (reported on stderr).
# Some proxies serve only part of a release's staging modules (seen for v1.31.14).
resolve_staging_versions() {
  (cd / && GOFLAGS=-mod=mod python3 - "$@" <<'PY'
import json, subprocess, sys

wanted, modules = sys.argv[1], sys.argv[2:]
out = subprocess.run(["go", "mod", "download", "-json", *(f"{m}@{wanted}" for m in modules)],
                     capture_output=True, text=True).stdout
decoder, pos, failed = json.JSONDecoder(), 0, set()
while True:
    while pos < len(out) and out[pos].isspace():
        pos += 1
    if pos >= len(out):
        break
    entry, pos = decoder.raw_decode(out, pos)
    if entry.get("Error"):
        failed.add(entry["Path"])
minor, patch = wanted.rsplit(".", 1)
for module in modules:
    version = wanted
    if module in failed:
        listed = subprocess.run(["go", "list", "-m", "-versions", module],
                                capture_output=True, text=True).stdout.split()[1:]
        earlier = [int(v.rsplit(".", 1)[1]) for v in listed
                   if v.rsplit(".", 1)[0] == minor and v.rsplit(".", 1)[1].isdigit()
                   and int(v.rsplit(".", 1)[1]) < int(patch)]
        if earlier:
            version = f"{minor}.{max(earlier)}"
        # Without an earlier patch the module stays as is: only a build that imports it fails (naming it).
        print(f"[install-cluster-binaries] {module} {wanted} is not served by the module proxy; using "
              f"{version if earlier else 'it anyway (no earlier patch either)'}", file=sys.stderr)
    print(module, version)
PY
  )
}

# The kubelet runs the real node (tests/harness/node.py); the others are the control plane and its client.
KUBERNETES_COMMANDS="kube-apiserver kube-controller-manager kubectl kubelet"

missing_kubernetes_commands() {
  local cmd
  for cmd in $KUBERNETES_COMMANDS; do [[ -x "$1/$cmd" ]] || echo "$cmd"; done
}

build_kubernetes() {
  local out="$CACHE/bin/kubernetes-$KUBE_VERSION" missing
  missing="$(missing_kubernetes_commands "$out")"
  if [[ -z "$missing" ]]; then log "kubernetes $KUBE_VERSION: cached in $out"; return; fi
  lock "kubernetes-$KUBE_VERSION"
  missing="$(missing_kubernetes_commands "$out")"
  if [[ -z "$missing" ]]; then log "kubernetes $KUBE_VERSION: cached in $out"; unlock; return; fi
  local work="$CACHE/build/kubernetes-$KUBE_VERSION" sv
  sv="$(staging_version "$KUBE_VERSION")"
  mkdir -p "$work" && cd "$work"
  log "kubernetes $KUBE_VERSION: resolving modules (staging modules at $sv)"
  # The staging modules are replaced by their published versions, read from the release's own go.mod.
  local modfile staging versions
  modfile="$(cd / && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  staging="$(go mod edit -json "$modfile" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])')"
  # shellcheck disable=SC2086  # one argument per module
  versions="$(resolve_staging_versions "$sv" $staging)"
  {
    echo "module kube-autorollout.local/kubernetes-binaries"
    echo "go 1.24"
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo "replace ("
    while read -r m v; do echo "  $m => $m $v"; done <<<"$versions"
    echo ")"
  } > go.mod
  local started=$SECONDS
  for cmd in $missing; do
    log "kubernetes $KUBE_VERSION: building $cmd (first build takes several minutes)"
    GOFLAGS="$GOFLAGS -mod=mod" build_with_heartbeat "$cmd $KUBE_VERSION" go build -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) \
      -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
      -o "$work/out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  mkdir -p "$out" && mv "$work/out/"* "$out/"
  log "kubernetes $KUBE_VERSION: ${missing//$'\n'/ } built in $((SECONDS - started))s"
  unlock
}

build_etcd() {
  local out="$CACHE/bin/etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then log "etcd $ETCD_VERSION: cached in $out"; return; fi
  lock "etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then log "etcd $ETCD_VERSION: cached in $out"; unlock; return; fi
  local work="$CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$work" && cd "$work"
  cat > go.mod <<MOD
module kube-autorollout.local/etcd-binaries
go 1.24
require go.etcd.io/etcd/server/v3 $ETCD_VERSION
replace (
  go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
  go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
  go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
  go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
  log "etcd $ETCD_VERSION: building"
  GOFLAGS="$GOFLAGS -mod=mod" build_with_heartbeat "etcd $ETCD_VERSION" \
    go build -ldflags "-s -w" -o "$work/out/etcd" go.etcd.io/etcd/server/v3
  mkdir -p "$out" && mv "$work/out/etcd" "$out/"
  unlock
}

build_helm() {
  local out="$CACHE/bin/helm-$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then log "helm $HELM_VERSION: cached in $out"; return; fi
  lock "helm-$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then log "helm $HELM_VERSION: cached in $out"; unlock; return; fi
  log "helm $HELM_VERSION: building"
  # Installed into a scratch dir first, so an interrupted build never looks cached.
  GOBIN="$CACHE/build/helm-$HELM_VERSION" build_with_heartbeat "helm $HELM_VERSION" \
    go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mkdir -p "$out" && mv "$CACHE/build/helm-$HELM_VERSION/helm" "$out/"
  unlock
}

build_etcd
build_kubernetes
build_helm
# The last line is machine-readable: the directories the harness puts first on PATH.
echo "$CACHE/bin/etcd-$ETCD_VERSION:$CACHE/bin/kubernetes-$KUBE_VERSION:$CACHE/bin/helm-$HELM_VERSION"
