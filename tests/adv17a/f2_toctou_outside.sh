#!/bin/bash
# RB102 (a schedule's runbook must stay inside its repository) is checked once, when the worker
# starts. Each fire re-reads the runbook by its path: a symlink swapped after the start makes
# the worker fire a runbook from outside the repository, which `check` refuses.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f2.XXXX); cd "$D"; mkdir repo outside repo/.git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo inside"\n' > repo/inside.toml
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo OUTSIDE-RAN > %s/pwned"\n' "$D" > outside/evil.toml
ln -s inside.toml repo/r.toml
cat > repo/s.toml <<'T'
[schedule.tick]
runbook = "r.toml"
cron = "*/2 * * * * *"
time-zone = "UTC"
T
( cd repo && $B check s.toml ) || exit 1
ln -sfn ../outside/evil.toml repo/link-check.toml
printf '[schedule.tick]\nrunbook = "link-check.toml"\ncron = "* * * * *"\ntime-zone = "UTC"\n' > repo/s2.toml
echo "--- check of the same file through the outside link (refused, as it should be):"
( cd repo && $B check s2.toml --color never 2>&1 | grep -m1 RB102 )
$B state migrate --state st.db >/dev/null
( cd repo && exec $B worker --schedules s.toml --state ../st.db ) > worker.out 2>&1 & WP=$!
sleep 4
ln -sfn ../outside/evil.toml repo/r.toml     # swapped after the worker checked it
sleep 6
kill $WP; wait $WP 2>/dev/null
grep -E 'queued run|skipped' worker.out | tail -3
if [ -e pwned ]; then echo "BREAK: the worker ran outside/evil.toml: $(cat pwned)"; else echo "held"; fi
