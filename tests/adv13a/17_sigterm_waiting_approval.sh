#!/bin/bash
# SIGTERM while an attached engine (--wait) waits for an approval; then approve + resume.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-17.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "wait-sigterm"

[steps.gate]
approval = { prompt = "go?" }

[steps.after]
needs = ["gate"]
run = "echo after >> trace"

[finally.f]
run = "echo f >> trace"
T
$B run r.toml --state state.db --as oncall --wait --yes > out1 2>&1 &
P=$!; sleep 1.5; s=$(date +%s.%N)
kill -TERM $P; wait $P; echo "rc=$? after $(echo "$(date +%s.%N) - $s" | bc)s"; tail -3 out1
R=$(ls runs)
$B approve $R gate --state state.db --as bo 2>&1 | tail -2
timeout 10 $B resume $R --state state.db --as oncall --yes 2>&1 | tail -3
$B show $R --state state.db | tail -4; cat trace
