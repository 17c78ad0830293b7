#!/bin/bash
# A schedule whose every due time is skipped ("not queued") never trips its dead-man's switch:
# no run was ever queued, so there is nothing to measure "overdue" from. Here the runbook asks
# for a confirmation (check and the worker accept it; every fire is then refused).
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /tmp/adv17a-f1.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
cat > r.toml <<'T'
[runbook]
name = "r"
[steps.a]
run = "echo backup"
confirm = "really back up?"
T
PORT=$((20000 + RANDOM % 20000))
cat > s.toml <<T
[schedule.nightly]
runbook = "r.toml"
cron = "*/5 * * * * *"
time-zone = "UTC"
expect-success-within = "1m"
notify = { webhook = "http://127.0.0.1:$PORT/hook" }
T
$B check s.toml || exit 1
python3 "$HERE/hook.py" $PORT hook.log & HP=$!
$B state migrate --state st.db >/dev/null
$B worker --schedules s.toml --state st.db > worker.out 2>&1 & WP=$!
sleep ${WAIT:-80}
kill $WP; wait $WP 2>/dev/null; kill $HP
echo "--- worker output (first lines)"; head -5 worker.out
echo "skipped due times: $(grep -c ': skipped: ' worker.out)"
echo "--- schedules --state"; $B schedules s.toml --state st.db --color never | grep -E 'last|OVERDUE'
echo "--- webhook received: $(wc -l < hook.log 2>/dev/null || echo 0) notification(s)"
if [ ! -s hook.log ] && ! grep -q OVERDUE <($B schedules s.toml --state st.db); then echo "BREAK: no alert, not OVERDUE, after $(grep -c ': skipped: ' worker.out) refused fires"; fi
