#!/bin/bash
# Promise 1 variant: a non-idempotent compensation ended by its TIMEOUT (may have done part
# of its work, like a timed-out main step, which resume does NOT re-run without a decision)
# is re-run by `runbook compensate` with no decision asked.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-04.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "comp-timeout"

[defaults]
on-failure = "compensate"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start >> trace; sleep 5; echo undo-end >> trace", timeout = "1s" }

[steps.boom]
needs = ["create"]
run = "exit 3"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1; echo "run rc=$?"; tail -4 out1
R=$(ls runs)
timeout 20 $B compensate "$R" --state state.db --as oncall --yes > out2 2>&1; echo "compensate rc=$?"; cat out2
echo "--- trace:"; cat trace
n=$(grep -c undo-start trace)
[ "$n" -ge 2 ] && echo "BROKEN: timed-out compensation started again ($n) without a decision" || echo "ok"
