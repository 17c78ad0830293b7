#!/bin/bash
# The dead-man's switch posts its webhook inside the worker's poll loop, before the heartbeat,
# with a 10 s timeout. A webhook that does not answer stalls the worker's heartbeat past
# STALE_AFTER (5 s): another worker takes the run this worker is executing as abandoned.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /tmp/adv17a-f6b.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
PORT=$((20000 + RANDOM % 20000))
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "exit 1"\n' > r.toml
cat > long.toml <<T
[runbook]
name = "long"
[steps.once]
run = "echo started \$\$ >> $D/count; sleep 40; echo done >> $D/count"
T
cat > s.toml <<T
[schedule.failing]
runbook = "r.toml"
cron = "*/2 * * * * *"
time-zone = "UTC"
expect-success-within = "1m"
notify = { webhook = "http://127.0.0.1:$PORT/hook" }
T
python3 "$HERE/blackhole.py" $PORT & HP=$!
$B state migrate --state st.db >/dev/null
$B worker --schedules s.toml --state st.db --concurrency 2 > a.out 2>&1 & A=$!
sleep 52
$B submit long.toml --state st.db --yes 2>&1 | tail -1
sleep 3
$B worker --state st.db > b.out 2>&1 & Bw=$!
sleep 50
kill $A $Bw; wait $A $Bw 2>/dev/null; kill $HP
echo "--- worker A:"; grep -vE 'failing due|failed \(exit|: running' a.out | head -8
echo "--- worker B:"; head -6 b.out
echo "--- the long run's step started $(grep -c started count) time(s):"; cat count
