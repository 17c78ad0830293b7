#!/bin/bash
# A suspended run (waiting for approval) is ended by `runbook compensate`. Can its approval
# still be granted afterwards, and what is the approver told?
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-22.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "gated"

[steps.prep]
run = "echo prep >> trace"
compensate = { run = "echo undo-prep >> trace" }

[steps.gate]
needs = ["prep"]
approval = { prompt = "go?" }

[steps.after]
needs = ["gate"]
run = "echo after >> trace"
T
$B run r.toml --state state.db --as oncall --yes < /dev/null > out1 2>&1; echo "run rc=$?"
R=$(ls runs)
echo "--- compensate"; $B compensate $R --state state.db --as oncall --yes 2>&1 | tail -2
echo "--- approve after the run was compensated:"; $B approve $R gate --state state.db --as bo 2>&1; echo "rc=$?"
echo "--- resume:"; $B resume $R --state state.db --as oncall --yes 2>&1 | tail -2
$B show $R --state state.db | tail -4; cat trace
