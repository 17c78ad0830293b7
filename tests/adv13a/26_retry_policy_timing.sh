#!/bin/bash
# Retry policy honoured for a main step, a compensation and a finally step (delay 0.5s, backoff 2, attempts 3, on-exit-codes).
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-26.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "retry-timing"

[steps.create]
run = "echo create >> trace"
compensate = { run = "echo comp $(date +%s.%N) >> trace; exit 7", retry = { attempts = 3, delay = "500ms", backoff = 2.0 } }

[steps.main]
needs = ["create"]
run = "echo main $(date +%s.%N) >> trace; exit 7"
retry = { attempts = 3, delay = "500ms", backoff = 2.0, on-exit-codes = [7] }

[steps.other]
needs = []
on-failure = "continue"
run = "echo other $(date +%s.%N) >> trace; exit 8"
retry = { attempts = 3, delay = "500ms", on-exit-codes = [7] }

[finally.f]
run = "echo fin $(date +%s.%N) >> trace; exit 1"
retry = { attempts = 2, delay = "300ms" }
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1; echo "rc=$?"
awk '{ if (prev[$1]) printf "%s +%.2fs\n", $1, $2-prev[$1]; else print $1, "first"; prev[$1]=$2 }' trace
