#!/bin/bash
# Promise 1: a non-idempotent `finally` step ended by SIGTERM mid-work is journaled as failed
# ("cancelled"); `runbook resume` runs it again, no decision asked.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-02.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "finally-sigterm"

[steps.work]
run = "echo work >> trace"

[finally.notify]
run = "echo notify-start >> trace; touch reached; sleep 30; echo notify-end >> trace"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -TERM $P; wait $P; echo "first run rc=$?"; tail -4 out1
R=$(ls runs); rm -f reached
timeout 5 $B resume "$R" --state state.db --as oncall --yes > out2 2>&1; echo "resume rc=$?"
cat out2
echo "--- trace:"; cat trace
n=$(grep -c notify-start trace)
[ "$n" -ge 2 ] && echo "BROKEN: finally step started $n times" || echo "ok: not re-run"
