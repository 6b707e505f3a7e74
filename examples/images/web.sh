#!/bin/sh
# The example web app: answers "web <version> <pod name>" on port $PORT with busybox httpd.
#   /          "web v1 web-7d9c-abcde" (version and pod name, one line)
#   /healthz   "ok" once started (for liveness probes)
#   /ready     "ready" once READY_AFTER seconds have passed (for readiness probes)
#   /config    the GREETING variable and the files under /etc/web (ConfigMap / Secret demo)
port="${PORT:-8080}"
www=/tmp/www
mkdir -p "$www"
echo "web ${VERSION:-dev} $(hostname)" > "$www/index.html"
echo ok > "$www/healthz"
{
    echo "greeting: ${GREETING:-<unset>}"
    for f in /etc/web/*; do
        [ -f "$f" ] && echo "$(basename "$f"): $(cat "$f")"
    done
} > "$www/config" 2>/dev/null || true
if [ "${READY_AFTER:-0}" -gt 0 ]; then
    echo "web ${VERSION:-dev}: ready in ${READY_AFTER}s"
    (sleep "$READY_AFTER" && echo ready > "$www/ready") &
else
    echo ready > "$www/ready"
fi
echo "web ${VERSION:-dev} serving on :$port as $(hostname)"
exec httpd -f -v -p "$port" -h "$www"
