#!/bin/bash
# Closed stdout during a run: `runbook run ... | head -c1`. Does the engine keep going and end the run cleanly?
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-14.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "pipe"

[steps.a]
run = "for i in $(seq 50); do echo line $i; done; echo a >> trace"

[steps.b]
needs = ["a"]
run = "sleep 0.5; echo b >> trace"

[finally.f]
run = "echo f >> trace"
T
$B run r.toml --state state.db --as oncall --yes 2>err | head -c1; echo; echo "rc=${PIPESTATUS[0]}"
sleep 1; cat err | tail -5; echo "--- trace:"; cat trace
R=$(ls runs); $B show $R --state state.db | tail -5
