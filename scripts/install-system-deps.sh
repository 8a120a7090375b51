#!/usr/bin/env bash
# Install the Debian packages the tests and the demo run: docker-registry (CNCF distribution, the
# real OCI registry of the tests) and apache2-utils (htpasswd for its Basic auth set-up).
# Does nothing when they are there already.
set -euo pipefail

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v wrk >/dev/null || need+=(wrk) # the HTTP load generator of bench/admission.py (make bench)
((${#need[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "[install-system-deps] installing Debian packages: ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
