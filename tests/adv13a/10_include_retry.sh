#!/bin/bash
# Retry policy on a `runbook` (include) step: honoured, rejected, or silently ignored?
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-10.XXXX); cd "$D"
cat > child.toml <<'T'
[runbook]
name = "child"

[steps.once]
run = "echo once >> trace"

[steps.flaky]
needs = ["once"]
run = "echo flaky >> trace; if [ ! -e flag ]; then touch flag; exit 1; fi"
T
cat > r.toml <<'T'
[runbook]
name = "parent"

[steps.inc]
runbook = { file = "child.toml" }
retry = { attempts = 3, delay = "100ms" }
T
$B check r.toml; echo "check rc=$?"
$B run r.toml --state state.db --as oncall --yes; echo "run rc=$?"
echo "--- trace:"; cat trace
