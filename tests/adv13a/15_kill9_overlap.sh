#!/bin/bash
# kill -9 the engine while an idempotent step that ignores SIGTERM runs; resume at once.
# Does the new attempt start while the old attempt's process still runs (two copies at once)?
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-15.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "overlap"

[steps.migrate]
run = "trap '' TERM; echo start-$$ >> trace; touch reached; sleep 3; echo end-$$ >> trace"
idempotent = true
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -KILL $P; wait $P 2>/dev/null; R=$(ls runs)
timeout 30 $B resume $R --state state.db --as oncall --yes 2>&1 | tail -3
echo "--- trace:"; cat trace
