#!/bin/bash
# SIGTERM arriving as a step fails (no precondition involved): sometimes the run is not
# interrupted but goes on to start compensations and `finally` under the cancel flag.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
for off in 0.95 0.98 1.00 1.01 1.02 1.03 1.05 1.08; do
D=$(mktemp -d /tmp/adv13a-25.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "race"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start >> trace; sleep 5; echo undo-end >> trace" }

[steps.boom]
needs = ["create"]
run = "touch go; sleep 1; exit 1"

[finally.f]
run = "echo f-start >> trace; sleep 5; echo f-end >> trace"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 200); do [ -e go ] && break; sleep 0.01; done
sleep $off; kill -TERM $P; wait $P; rc=$?
R=$(ls runs)
echo "offset $off: rc=$rc status=$($B show $R --state state.db | sed -n 2p | awk '{print $2}') trace=[$(tr '\n' ' ' < trace)] $(grep -c 'cancelled' out1) cancelled"
done
