#!/usr/bin/env bash
# Run after scripts/install-test-deps.sh and cargo build; uses ports 19192 and 19193.
# Shows `kferry status` for a route with lag: two local tansu brokers, 3000 records replicated,
# kferry stopped, 600 more produced.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T=.tools/bin/tansu; PY=.tools/venv/bin/python; K=tests/client/kclient.py; KF=target/debug/kferry
D=$(mktemp -d)
start() { CLUSTER_ID=$1 $T broker --listener-url tcp://127.0.0.1:$2 --advertised-listener-url tcp://127.0.0.1:$2 --storage-engine memory://tansu/ >/dev/null 2>&1 & echo $!; }
P1=$(start src 19192); P2=$(start dst 19193); trap "kill $P1 $P2 2>/dev/null" EXIT
sleep 2
$PY $K create-topic --bootstrap 127.0.0.1:19192 --topic orders --partitions 3 >/dev/null
$PY $K produce --bootstrap 127.0.0.1:19192 --topic orders --partitions 3 --count 3000 >/dev/null
cat > $D/kferry.toml <<TOML
[clusters.onprem]
"bootstrap.servers" = "127.0.0.1:19192"
[clusters.cloud]
"bootstrap.servers" = "127.0.0.1:19193"
[[routes]]
name = "orders-to-cloud"
source = "onprem"
target = "cloud"
topics = ["orders"]
"commit.interval.ms" = 200
TOML
$KF --log off run --config $D/kferry.toml & KP=$!
sleep 8; kill -TERM $KP; wait $KP || true
target/debug/kferry --log off bench produce --bootstrap 127.0.0.1:19192 --topic orders --workload a --partitions 3 --records-per-batch 20 --records 600 >/dev/null
sleep 3
echo '$ kferry status --config kferry.toml'
$KF --log off status --config $D/kferry.toml
