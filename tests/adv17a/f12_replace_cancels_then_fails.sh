#!/bin/bash
# overlap = "replace" cancels the still-queued previous run BEFORE it knows whether the new due
# time can be queued. When the new one cannot (the runbook no longer plans), both are lost:
# the queued run is cancelled and nothing replaces it.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f12.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\n' > r.toml
printf '[schedule.rep]\nrunbook = "r.toml"\ncron = "*/4 * * * * *"\ntime-zone = "UTC"\noverlap = "replace"\n' > s.toml
$B state migrate --state st.db >/dev/null
# The only worker is busy with a long run: the schedule's runs stay queued behind it.
printf '[runbook]\nname = "long"\n[steps.a]\nrun = "sleep 20"\n' > long.toml
$B submit long.toml --state st.db --yes >/dev/null 2>&1
$B worker --schedules s.toml --state st.db > w.out 2>&1 & W=$!
sleep 5
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\nconfirm = "sure?"\n' > r.toml
sleep 5; kill -9 $W; wait $W 2>/dev/null
grep due w.out
echo "--- queue:"; sqlite3 st.db "select run_id, state, note from queue"
