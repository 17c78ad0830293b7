#!/bin/bash
# Retries vs cancellation: SIGTERM while a main step waits between attempts (delay 60s).
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-05.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "retry-sigterm"

[steps.flaky]
run = "echo attempt >> trace; touch reached; exit 1"
retry = { attempts = 5, delay = "60s" }
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done; sleep 0.3
t0=$(date +%s.%N); kill -TERM $P; wait $P; rc=$?; t1=$(date +%s.%N)
echo "run rc=$rc after SIGTERM in $(echo "$t1 - $t0" | bc)s"; tail -5 out1; cat trace
