#!/bin/bash
# Approvals: a rejected approval (on-failure = stop) then `resume` of the failed run; then approve.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-13.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "gated"

[steps.gate]
approval = { prompt = "go?", approvers = ["ana", "bo"] }

[steps.after]
needs = ["gate"]
run = "echo after >> trace"
T
$B run r.toml --state state.db --as oncall --yes < /dev/null > out1 2>&1; echo "run rc=$?"
R=$(ls runs)
echo "--- ana rejects"; $B reject $R gate --state state.db --as ana --reason "not now" 2>&1 | tail -2
echo "--- resume"; timeout 10 $B resume $R --state state.db --as oncall --yes < /dev/null 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
echo "--- resume again"; timeout 10 $B resume $R --state state.db --as oncall --yes < /dev/null 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
echo "--- bo approves"; $B approve $R gate --state state.db --as bo 2>&1 | tail -2
echo "--- resume"; timeout 10 $B resume $R --state state.db --as oncall --yes < /dev/null 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
$B show $R --state state.db | tail -3; cat trace 2>/dev/null
