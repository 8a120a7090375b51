#!/usr/bin/env bash
# Install the Debian packages the tests and the demo run: docker-registry (CNCF distribution, the
# real OCI registry of the tests) and apache2-utils (htpasswd for its Basic auth set-up); buildah,
# mmdebstrap and runc build the product image daemonless on a Debian base made here and run it
# (tests/harness/image.py); for the real node (tests/harness/node.py) containerd, runc, the CNI
# plugins, iptables and busybox-static (the pause image and the test images are made of it).
# Does nothing when they are there already.
set -euo pipefail

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v runc >/dev/null || need+=(runc)
command -v containerd >/dev/null || need+=(containerd)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
file_is_static() { [[ -x "$1" ]] && ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || need+=(busybox-static)
command -v wrk >/dev/null || need+=(wrk) # the HTTP load generator of bench/admission.py (make bench)
((${#need[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "[install-system-deps] installing Debian packages: ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
