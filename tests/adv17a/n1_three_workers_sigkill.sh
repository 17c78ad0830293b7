#!/bin/bash
# Negative result check: three workers fire one schedule (every second) on one SQLite store;
# every ~1.5 s one of them is SIGKILLed and restarted. Each due time must be queued once and
# each run's non-idempotent step must start at most once.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-n1.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo {{ run.id }} >> %s/ran; sleep 0.3"\n' "$D" > r.toml
printf '[schedule.tick]\nrunbook = "r.toml"\ncron = "* * * * * *"\ntime-zone = "UTC"\noverlap = "queue"\ncatch-up = "all"\n' > s.toml
$B state migrate --state st.db >/dev/null
declare -a P
start() { $B worker --schedules s.toml --state st.db --concurrency 2 >> w$1.out 2>&1 & P[$1]=$!; }
for i in 0 1 2; do start $i; done
END=$((SECONDS + ${DUR:-40}))
while [ $SECONDS -lt $END ]; do
  sleep 1.$((RANDOM % 9)); i=$((RANDOM % 3)); kill -9 ${P[$i]} 2>/dev/null; wait ${P[$i]} 2>/dev/null; start $i
done
for i in 0 1 2; do kill ${P[$i]}; done; sleep 8; for i in 0 1 2; do kill -9 ${P[$i]} 2>/dev/null; done
echo "fires: $(sqlite3 st.db "select count(*) from schedule_fires where outcome='queued'"), distinct due: $(sqlite3 st.db 'select count(distinct due_ms) from schedule_fires')"
echo "fired-line duplicates across workers: $(cat w*.out | grep -o 'due [^:]*:[^:]*:[^:]*: queued' | sort | uniq -d | wc -l)"
echo "step starts: $(wc -l < ran), distinct runs: $(sort -u ran | wc -l), runs started twice: $(sort ran | uniq -d | wc -l)"
sort ran | uniq -d | head -3
