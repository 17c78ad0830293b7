#!/bin/bash
# catch-up = "none" drops due times "missed while no worker ran", but a due time is taken as
# missed when the worker saw it more than 60 s (LATE) late -- whatever the reason. A worker
# polling every 70 s (`--poll 70s`, running all along) silently loses due times: no line, no
# record in schedule_fires, nothing in `runbook schedules`.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f9.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\n' > r.toml
printf '[schedule.tick]\nrunbook = "r.toml"\ncron = "0,30 * * * * *"\ntime-zone = "UTC"\ncatch-up = "none"\noverlap = "queue"\n' > s.toml
$B state migrate --state st.db >/dev/null
$B worker --schedules s.toml --state st.db --poll 70s --concurrency 0 > w.out 2>&1 & W=$!
START=$(date +%s); sleep ${WAIT:-150}; END=$(date +%s)
kill $W; wait $W 2>/dev/null
echo "due times (every 30 s) while the worker ran: about $(( (END - START) / 30 ))"
echo "recorded in schedule_fires: $(sqlite3 st.db 'select count(*) from schedule_fires')"
grep -E 'due' w.out
