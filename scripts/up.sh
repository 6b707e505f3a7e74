#!/usr/bin/env bash
# Brings up a 3-node Skiff lab on this machine (root: runc, network namespaces, nftables) with
# the web example running behind a Service, for trying it out. Re-running it reports the lab
# that is already up. `target/release/skiff lab down` removes everything again. Set SKIFF_NODES
# for another node count, SKIFF_LAB_DIR for another lab directory.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --locked -p skiff -p skiffctl
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release"

export SKIFF_LAB_DIR="${SKIFF_LAB_DIR:-/var/lib/skiff/lab}"
"$bin/skiff" lab up --nodes "${SKIFF_NODES:-3}"

export KUBECONFIG="$SKIFF_LAB_DIR/server/kubeconfig.yaml"
ctl="$bin/skiffctl"
$ctl apply -f examples/web.yaml
$ctl rollout status deployment/web --timeout=180s
$ctl get pods -o wide
node_ip=$($ctl get nodes -o jsonpath='{.items[0].status.addresses[0].address}')
echo
echo "The web Service answers on every node at port 30080:"
for _ in 1 2 3; do curl -fsS "http://$node_ip:30080/"; done
cat <<MSG

Skiff lab is up ($SKIFF_LAB_DIR). Next:
  export KUBECONFIG=$KUBECONFIG
  export PATH=$bin:\$PATH
  skiffctl get pods -o wide -w                 # in another terminal
  skiffctl apply -f examples/web-v2.yaml       # rolling update to v2
  skiff lab node kill node-2                   # watch the pods move
  skiff lab down                               # remove everything
The README's walkthrough goes through it step by step.
MSG
