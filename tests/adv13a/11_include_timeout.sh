#!/bin/bash
# `timeout` on a `runbook` (include) step: honoured, rejected, or silently ignored?
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-11.XXXX); cd "$D"
cat > child.toml <<'T'
[runbook]
name = "child"

[steps.slow]
run = "sleep 4; echo slow-done >> trace"
T
cat > r.toml <<'T'
[runbook]
name = "parent"

[steps.inc]
runbook = { file = "child.toml" }
timeout = "1s"
T
$B check r.toml; echo "check rc=$?"
s=$(date +%s); $B run r.toml --state state.db --as oncall --yes; echo "run rc=$? after $(( $(date +%s)-s ))s"
cat trace
