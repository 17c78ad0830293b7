#!/bin/bash
# catch-up = "latest" promises ONE run for all the due times missed while no worker ran. After
# a long downtime of an every-minute schedule (here ~3 years, made with libfaketime: the worker
# last fired in 2023), due_between's 1,000,000-step cap makes the first poll fire a due time
# from ~2025 (not the latest), the next poll another, ...: several stale runs, and each poll
# spends its time stepping croner (the worker's heartbeat waits meanwhile).
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f5.XXXX); cd "$D"; mkdir .git
export XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\n' > r.toml
printf '[schedule.minutely]\nrunbook = "r.toml"\ncron = "* * * * *"\ntime-zone = "UTC"\ncatch-up = "latest"\noverlap = "queue"\n' > s.toml
$B state migrate --state st.db >/dev/null
echo "@$(date -u -d '3 years ago' +%F) 10:00:55" > clock
FAKETIME_TIMESTAMP_FILE=$D/clock FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 TZ=UTC \
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
  timeout 12 $B worker --schedules s.toml --state st.db --concurrency 0 > old.out 2>&1
echo "--- the worker of 3 years ago:"; grep 'queued run' old.out
echo "--- a worker today (downtime over), 40 s:"
timeout 40 $B worker --schedules s.toml --state st.db --concurrency 0 > new.out 2>&1
grep 'queued run' new.out
echo "runs queued by catch-up latest today: $(grep -c 'queued run' new.out) (one expected, due $(date -u +%FT%H:%M))"
