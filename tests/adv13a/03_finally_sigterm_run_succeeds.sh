#!/bin/bash
# Lifecycle: SIGTERM while a `finally` step runs. The book (design/execution.md, `finally`):
# Ctrl-C or SIGTERM ends the running attempts, journals `run_interrupted`, leaves them in
# doubt, exit 130. Observed: the finally step is journaled failed ("cancelled"), the NEXT
# finally step still starts (and is cancelled at once), the run is journaled `succeeded`,
# exit 0; `resume` refuses ("has finished"), so the finally steps never run to completion.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-03.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "finally-sigterm"

[steps.work]
run = "echo work >> trace"

[finally.release_lock]
run = "echo release-start >> trace; touch reached; sleep 30; echo release-end >> trace"

[finally.notify]
run = "echo notify-start >> trace; sleep 2; echo notify-end >> trace"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -TERM $P; wait $P; echo "run rc=$? (book: 130)"; cat out1
R=$(ls runs)
$B show "$R" --state state.db
$B audit "$R" --state state.db 2>&1 | cut -c1-160
echo "--- resume:"; timeout 5 $B resume "$R" --state state.db --as oncall --yes; echo "resume rc=$?"
echo "--- trace:"; cat trace
