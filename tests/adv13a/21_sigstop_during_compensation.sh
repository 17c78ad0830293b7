#!/bin/bash
# Split brain during a compensation: RUNBOOK_LEASE_TTL=2s; SIGSTOP the engine while an
# IDEMPOTENT compensation runs; another engine's `compensate` takes the expired lease and runs
# the compensation again; then SIGCONT the first. Do two copies of the compensation overlap,
# and does the stalled engine write anything after it lost the lease?
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-21.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "stall"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start-$$ >> trace; touch reached; sleep 6; echo undo-end-$$ >> trace", idempotent = true }

[steps.boom]
needs = ["create"]
run = "exit 1"
T
export RUNBOOK_LEASE_TTL=2s
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -STOP $P; sleep 4
R=$(ls runs)
timeout 30 $B compensate $R --state state.db --as other --yes > out2 2>&1 &
C=$!
sleep 1.5; kill -CONT $P
wait $P; echo "first engine rc=$?"; wait $C; echo "compensate rc=$?"
echo "--- first:"; tail -5 out1; echo "--- second:"; tail -6 out2
echo "--- trace:"; cat trace
$B audit $R --state state.db | cut -c1-110
