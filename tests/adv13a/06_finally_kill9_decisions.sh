#!/bin/bash
# kill -9 during a non-idempotent finally step; resume; then the operator's decisions.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-06.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "finally-kill"

[steps.work]
run = "echo work >> trace"

[finally.release_lock]
run = "echo release-start >> trace; touch reached; sleep 30; echo release-end >> trace"

[finally.notify]
run = "echo notify >> trace"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -KILL $P; wait $P; echo "run rc=$?"; rm -f reached
R=$(ls runs); sleep 0.5
echo "--- resume (no decision):"; timeout 20 $B resume "$R" --state state.db --as oncall --yes; echo "rc=$?"
echo "--- resume --skip release_lock:"; timeout 20 $B resume "$R" --state state.db --as oncall --yes --skip release_lock --reason "released by hand"; echo "rc=$?"
echo "--- show:"; $B show "$R" --state state.db
echo "--- trace:"; cat trace
