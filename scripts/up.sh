#!/usr/bin/env bash
# Brings up a Skiff control plane on this machine with an example applied, for trying it out.
# The multi-node lab (`skiff lab up`) arrives with issue 8; until then this runs `skiff server`
# (API server, scheduler, controllers) on loopback with three simulated nodes, and rolls out the
# nginx Deployment from the Kubernetes documentation onto them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release -p skiff

DATA_DIR="${SKIFF_DATA_DIR:-$PWD/.skiff/server}"
LISTEN="${SKIFF_LISTEN:-127.0.0.1:6443}"
mkdir -p "$DATA_DIR"

if [ -f "$DATA_DIR/skiff.pid" ] && kill -0 "$(cat "$DATA_DIR/skiff.pid")" 2>/dev/null; then
  echo "skiff server already running (pid $(cat "$DATA_DIR/skiff.pid"))"
else
  rm -f "$DATA_DIR/kubeconfig.yaml"
  nohup target/release/skiff server --listen "$LISTEN" --data-dir "$DATA_DIR" \
    >"$DATA_DIR/server.log" 2>&1 &
  echo $! >"$DATA_DIR/skiff.pid"
  for _ in $(seq 1 100); do
    [ -f "$DATA_DIR/kubeconfig.yaml" ] && curl -fsS --cacert "$DATA_DIR/tls/ca.crt" "https://$LISTEN/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

export KUBECONFIG="$DATA_DIR/kubeconfig.yaml"

# Simulated nodes (hollow: they run no containers, they report pods Running) until real node
# agents land (issue 6).
if [ -f "$DATA_DIR/agent.pid" ] && kill -0 "$(cat "$DATA_DIR/agent.pid")" 2>/dev/null; then
  echo "simulated nodes already running (pid $(cat "$DATA_DIR/agent.pid"))"
else
  nohup target/release/skiff agent --runtime simulated --kubeconfig "$KUBECONFIG" --nodes 3 \
    >"$DATA_DIR/agent.log" 2>&1 &
  echo $! >"$DATA_DIR/agent.pid"
fi

kubectl apply -f examples/k8s-docs/nginx-deployment.yaml
kubectl rollout status deployment/nginx-deployment --timeout=120s
kubectl get deployments,replicasets,pods -o wide
cat <<MSG

Skiff is serving the Kubernetes API at https://$LISTEN (log: $DATA_DIR/server.log).
  export KUBECONFIG=$KUBECONFIG
  kubectl get all
Three simulated nodes (sim-0..sim-2) run the pods (log: $DATA_DIR/agent.log); they run no
real containers yet. Try: kubectl set image deployment/nginx-deployment nginx=nginx:1.27
                     kubectl rollout status deployment/nginx-deployment
Stop it with: kill \$(cat $DATA_DIR/agent.pid) \$(cat $DATA_DIR/skiff.pid)
MSG
