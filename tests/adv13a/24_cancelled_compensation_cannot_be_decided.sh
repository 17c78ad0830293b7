#!/bin/bash
# Follow-up of 01: after SIGTERM cut a non-idempotent compensation off, can the operator record
# that it took effect (`compensate --skip create --reason ...`)? Observed: refused ("not in
# doubt"), so the only way forward re-runs it.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-24.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "comp-sigterm"

[defaults]
on-failure = "compensate"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo undo-start >> trace; touch reached; sleep 30; echo undo-end >> trace" }

[steps.boom]
needs = ["create"]
run = "exit 3"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -TERM $P; wait $P; echo "first run rc=$?"
R=$(ls runs)
echo "--- compensate --skip create:"; $B compensate "$R" --state state.db --as oncall --yes --skip create --reason "the undo finished by hand" 2>&1; echo "rc=$?"
echo "--- compensate --rerun create:"; $B compensate "$R" --state state.db --as oncall --yes --rerun create --reason "x" 2>&1 | head -3; echo "rc=$?"
