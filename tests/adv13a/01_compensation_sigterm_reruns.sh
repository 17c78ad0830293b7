#!/bin/bash
# Promise 1: a non-idempotent compensation ended by SIGTERM mid-work is journaled as
# `compensation_failed: cancelled` and `runbook compensate` runs it again, no decision asked.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-01.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "comp-sigterm"

[defaults]
on-failure = "compensate"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start >> trace; touch reached; sleep 30; echo undo-end >> trace" }

[steps.boom]
needs = ["create"]
run = "exit 3"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -${SIG:-TERM} $P  # SIG=INT for Ctrl-C; wait $P; echo "first run rc=$?"
R=$(ls runs); rm -f reached
timeout 5 $B compensate "$R" --state state.db --as oncall --yes > out2 2>&1; echo "compensate rc=$?"
cat out2
echo "--- trace (undo-start twice = the compensation ran again without a decision):"
cat trace
n=$(grep -c undo-start trace)
[ "$n" -ge 2 ] && echo "BROKEN: compensation started $n times" || echo "ok: refused"
