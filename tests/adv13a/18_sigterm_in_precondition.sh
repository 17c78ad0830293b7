#!/bin/bash
# SIGTERM while a step's precondition (and, separately, the runbook's) is being checked.
# Observed: the signal becomes a FAILURE of the step (on-failure = compensate by default applies:
# the completed step `a` is UNDONE) or of the run's gate (run finished failed, exit 3); the run
# is not interrupted (no exit 130, no run_interrupted) and cannot be resumed.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
for where in step runbook; do
D=$(mktemp -d /tmp/adv13a-18.XXXX); cd "$D"
if [ $where = step ]; then
cat > r.toml <<'T'
[runbook]
name = "pre-sigterm"

[steps.a]
run = "echo a >> trace"
compensate = { run = "echo UNDO-a >> trace" }

[steps.b]
needs = ["a"]
run = "echo b >> trace"
preconditions = { slow = { run = "touch reached; sleep 20" } }
T
else
cat > r.toml <<'T'
[runbook]
name = "pre-sigterm"

[preconditions.slow]
run = "touch reached; sleep 20"

[steps.a]
run = "echo a >> trace"
T
fi
$B check r.toml >/dev/null || { $B check r.toml; continue; }
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -TERM $P; wait $P; echo "=== $where precondition: rc=$? (book: 130 = interrupted)"; tail -4 out1
R=$(ls runs); $B show $R --state state.db | sed -n 2p; $B show $R --state state.db | tail -3
echo "--- resume:"; timeout 10 $B resume $R --state state.db --as oncall --yes 2>&1 | tail -2
echo "--- trace:"; cat trace 2>/dev/null
done
