#!/bin/bash
# overlap = "skip" looks only at the queue's state (queued/claimed). A previous run of the
# schedule that is waiting for an approval (the worker let go of it) is not "queued or
# running" for it: the next due times start new runs of the same runbook beside it.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f13.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
cat > r.toml <<'T'
[runbook]
name = "purge"
[steps.count]
run = "echo counting"
idempotent = true
[steps.sign_off]
needs = ["count"]
approval = { prompt = "Purge now?", timeout = "30m" }
[steps.purge]
needs = ["sign_off"]
run = "echo purged"
T
printf '[schedule.p]\nrunbook = "r.toml"\ncron = "*/3 * * * * *"\ntime-zone = "UTC"\noverlap = "skip"\n' > s.toml
$B check s.toml || exit 1
$B state migrate --state st.db >/dev/null
$B worker --schedules s.toml --state st.db --concurrency 2 > w.out 2>&1 & W=$!
sleep 12; kill $W; wait $W 2>/dev/null
grep -E 'due|waiting|approval' w.out | head -8
echo "--- runs:"; sqlite3 st.db "select run_id, status from runs"
