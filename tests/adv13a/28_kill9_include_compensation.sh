#!/bin/bash
# kill -9 while an included runbook's compensation runs (undone from outside); then compensate,
# then compensate --skip inc/c1. The undo must not run twice.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-28.XXXX); cd "$D"
cat > child.toml <<'T'
[runbook]
name = "child"

[steps.c1]
run = "echo c1 >> trace"
compensate = { run = "echo undo-c1-start >> trace; touch reached; sleep 30; echo undo-c1-end >> trace" }
T
cat > r.toml <<'T'
[runbook]
name = "parent"

[steps.a]
run = "echo a >> trace"
compensate = { run = "echo undo-a >> trace" }

[steps.inc]
needs = ["a"]
runbook = { file = "child.toml" }

[steps.boom]
needs = ["inc"]
run = "exit 1"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -KILL $P; wait $P 2>/dev/null; R=$(ls runs); rm -f reached
echo "--- compensate:"; timeout 10 $B compensate $R --state state.db --as oncall --yes 2>&1 | tail -3
echo "--- compensate --skip inc/c1:"; timeout 10 $B compensate $R --state state.db --as oncall --yes --skip inc/c1 --reason "undone by hand" 2>&1 | tail -4
$B show $R --state state.db | tail -5; echo "--- trace:"; cat trace
