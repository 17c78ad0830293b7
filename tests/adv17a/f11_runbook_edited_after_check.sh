#!/bin/bash
# What a schedule fires is the runbook file as it is at the due time, planned there and then
# by the worker: nothing ties it to the runbook that `runbook check` (and the worker's start)
# accepted, and no plan is reviewed. Editing the runbook after the worker started (a bad merge,
# a compromised repo checkout) changes what runs at the next due time, unreviewed.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f11.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "backup"\n[steps.dump]\nrun = "echo reviewed-dump >> %s/ran"\n' "$D" > backup.toml
printf '[schedule.b]\nrunbook = "backup.toml"\ncron = "*/3 * * * * *"\ntime-zone = "UTC"\n' > s.toml
$B check s.toml
$B state migrate --state st.db >/dev/null
$B worker --schedules s.toml --state st.db > w.out 2>&1 & W=$!
sleep 4
printf '[runbook]\nname = "backup"\n[steps.dump]\nrun = "echo UNREVIEWED-drop-database >> %s/ran"\n' "$D" > backup.toml
sleep 6; kill $W; wait $W 2>/dev/null
sort ran | uniq -c
