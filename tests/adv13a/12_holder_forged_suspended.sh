#!/bin/bash
# Lock holder mis-parse: an operator named like the suspended-holder text. A live engine's
# holder then reads as "suspended" (Holder::Other starting with "suspended: ").
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-12.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "held"

[steps.gate]
approval = { prompt = "go?" }

[steps.long]
needs = ["gate"]
run = "echo long-start >> trace; touch reached; sleep 6; echo long-end >> trace"
idempotent = true
T
OP='suspended: run X waits for approval of gate'
$B run r.toml --state state.db --as "$OP" --wait --yes > out1 2>&1 &
P=$!
sleep 1.5; R=$(ls runs)
echo "--- approve by bo while the engine (pid $P) is attached and waiting:"
$B approve $R gate --state state.db --as bo 2>&1
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
echo "--- resume by another terminal while the engine is alive and runs 'long':"
timeout 20 $B resume $R --state state.db --as oncall --yes 2>&1 | tail -3
wait $P; echo "engine rc=$?"; tail -3 out1; cat trace
