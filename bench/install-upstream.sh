#!/usr/bin/env bash
# Build the upstream Rust kube-autorollout (pinned) into ~/.cache/kube-autorollout/upstream-<version>
# unless it is there already; prints the binary's path. Never committed: it lives in the cache.
set -euo pipefail
version="${UPSTREAM_VERSION:-0.5.2}"
root="${HOME}/.cache/kube-autorollout/upstream-${version}"
if [[ ! -x "${root}/bin/kube-autorollout" ]]; then
  echo "[install-upstream] building kube-autorollout ${version} with cargo (several minutes on 2 cores)" >&2
  nice -n 10 cargo install kube-autorollout --version "${version}" --locked --root "${root}" >&2
fi
echo "${root}/bin/kube-autorollout"
