#!/bin/bash
# Approval with timeout: suspended, deadline passes, then approve / resume.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-23.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "gated"

[defaults]
on-failure = "stop"

[steps.gate]
approval = { prompt = "go?", timeout = "1s" }

[steps.after]
needs = ["gate"]
run = "echo after >> trace"

[finally.f]
run = "echo f >> trace"
T
$B run r.toml --state state.db --as oncall --yes < /dev/null > out1 2>&1; echo "run rc=$?"; tail -3 out1
R=$(ls runs); sleep 2
echo "--- approve after deadline:"; $B approve $R gate --state state.db --as bo 2>&1; echo "rc=$?"
echo "--- resume:"; timeout 10 $B resume $R --state state.db --as oncall --yes < /dev/null 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
echo "--- resume again:"; timeout 10 $B resume $R --state state.db --as oncall --yes < /dev/null 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"
$B show $R --state state.db | tail -4; cat trace
