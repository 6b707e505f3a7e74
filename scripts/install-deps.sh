#!/usr/bin/env bash
# Installs the system packages Skiff's build, tests and lab need, when they are missing.
# Debian 12 as root; safe to run repeatedly (does nothing when everything is there).
set -euo pipefail

# package -> a file it provides, to tell whether it is installed
declare -A PROVIDES=(
  [protobuf-compiler]=/usr/bin/protoc          # etcd-client's build script
  [etcd-server]=/usr/bin/etcd                  # etcd backend tests and benchmarks
  [runc]=/usr/sbin/runc                        # container runtime (node agent)
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [nftables]=/usr/sbin/nft
  [docker-registry]=/usr/bin/docker-registry   # OCI registry on loopback for image tests
  [busybox-static]=/bin/busybox
  [diffutils]=/usr/bin/diff                    # kubectl diff
  [iproute2]=/usr/sbin/ip                      # network namespaces, routes (pod network)
  [curl]=/usr/bin/curl                         # scripts/up.sh calls the example Service
)

missing=()
for pkg in "${!PROVIDES[@]}"; do
  [ -e "${PROVIDES[$pkg]}" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's etcd-server package starts a system etcd on 127.0.0.1:2379; Skiff's tests start
# their own on free ports, so the system one is stopped to keep the machine quiet.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi

if [ ! -x /usr/bin/kubectl ]; then
  echo "install-deps: warning: /usr/bin/kubectl not found; the kubectl compatibility tests need it" >&2
fi
