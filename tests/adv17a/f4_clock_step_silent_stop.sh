#!/bin/bash
# The host clock runs a year ahead for a few seconds (a bad RTC/NTP step), then is corrected.
# The worker recorded due times in the future; afterwards it fires nothing (it waits for the
# future due time to pass), and the dead-man's switch says nothing either (the last success is
# "in the future", so it is never older than the window): the schedule has silently stopped.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /tmp/adv17a-f4.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\n' > r.toml
PORT=$((20000 + RANDOM % 20000))
cat > s.toml <<T
[schedule.tick]
runbook = "r.toml"
cron = "*/2 * * * * *"
time-zone = "UTC"
expect-success-within = "1m"
remind-every = "1m"
notify = { webhook = "http://127.0.0.1:$PORT/hook" }
T
python3 "$HERE/hook.py" $PORT hook.log & HP=$!
$B state migrate --state st.db >/dev/null
echo "+365d" > clock
FAKETIME_TIMESTAMP_FILE=$D/clock FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
  $B worker --schedules s.toml --state st.db > worker.out 2>&1 & WP=$!
sleep 6
echo "+0" > clock      # the clock is corrected
date -u +"clock corrected at %FT%TZ"; : > mark; sleep ${WAIT:-80}
kill $WP; wait $WP 2>/dev/null; kill $HP
echo "--- worker: fires before the correction"; grep 'queued run' worker.out | head -2
echo "fires in total: $(grep -c 'queued run' worker.out); succeeded: $(grep -c succeeded worker.out)"
echo "--- schedules --state now:"; $B schedules s.toml --state st.db --color never | grep -E 'last|OVERDUE|next'
echo "--- notifications received: $(wc -l < hook.log 2>/dev/null || echo 0)"
