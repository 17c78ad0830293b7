#!/bin/bash
# Fires are keyed by (schedule name, due time) only. Two schedules files that share a store
# (two teams, one PostgreSQL; or two repos on one host's SQLite) and both call a schedule
# `nightly` take each other's due times: each due time runs ONE of the two runbooks, the other
# worker's conflict is silent, and its dead-man's switch counts the other team's successes.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f8.XXXX); cd "$D"; mkdir -p team1/.git team2/.git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
for t in team1 team2; do
  printf '[runbook]\nname = "%s-backup"\n[steps.a]\nrun = "echo %s >> %s/ran"\n' $t $t "$D" > $t/backup.toml
  printf '[schedule.nightly]\nrunbook = "backup.toml"\ncron = "*/2 * * * * *"\ntime-zone = "UTC"\nexpect-success-within = "1m"\n' > $t/s.toml
done
$B state migrate --state st.db >/dev/null
( cd team1 && exec $B worker --schedules s.toml --state ../st.db ) > w1.out 2>&1 & W1=$!
( cd team2 && exec $B worker --schedules s.toml --state ../st.db ) > w2.out 2>&1 & W2=$!
sleep 16
kill $W1 $W2; wait $W1 $W2 2>/dev/null
echo "due times fired: $(sqlite3 st.db 'select count(*) from schedule_fires' 2>/dev/null)"
echo "team1 runs: $(grep -c team1 ran)   team2 runs: $(grep -c team2 ran)   (each team's runbook should run at every due time)"
( cd team2 && $B schedules s.toml --state ../st.db --color never | grep -E 'last run' )
