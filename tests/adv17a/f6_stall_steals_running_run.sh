#!/bin/bash
# A worker's schedule pass runs inside its poll loop, before its heartbeat. A pass that takes
# longer than STALE_AFTER (5 s) -- here catch-up stepping croner 1,000,000 times after a
# downtime; a notify webhook that does not answer (10 s timeout) does the same -- makes the
# other workers take its claimed runs as dead and resume them while its engine still runs.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f6.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
# Its due times are never queued (a confirmation): only the stepping counts here.
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\nconfirm = "sure?"\n' > r.toml
cat > long.toml <<T
[runbook]
name = "long"
[steps.once]
run = "echo started \$\$ >> $D/count; sleep 25; echo done >> $D/count"
T
for n in a b c; do printf '[schedule.%s]\nrunbook = "r.toml"\ncron = "* * * * * *"\ntime-zone = "UTC"\ncatch-up = "latest"\n\n' $n; done > s.toml
$B state migrate --state st.db >/dev/null
# The schedule last fired a year ago (a worker on a host whose clock was a year behind).
FAKETIME_DONT_FAKE_MONOTONIC=1 LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 FAKETIME="-365d" \
  timeout 4 $B worker --schedules s.toml --state st.db --concurrency 0 > old.out 2>&1
grep -q 'skipped' old.out || { echo "setup failed"; cat old.out; exit 1; }
$B submit long.toml --state st.db --yes 2>&1 | tail -1
$B worker --schedules s.toml --state st.db > a.out 2>&1 & A=$!
sleep 3
$B worker --state st.db > b.out 2>&1 & Bw=$!
sleep 30
kill $A $Bw; wait $A $Bw 2>/dev/null
echo "--- worker A (schedules):"; grep -v 'skipped' a.out | head -5; echo "(and $(grep -c skipped a.out) skipped due times)"
echo "--- worker B:"; head -5 b.out
echo "--- the long run's step started $(grep -c started count) time(s):"; cat count
