#!/bin/bash
# `runbook check` accepts a cron expression that matches no date at all (February 30th, April
# 31st): exit 0, no RB100. A worker starts on it, never fires it, and -- nothing ever fired --
# its dead-man's switch never alerts. `runbook schedules` is the only place that says "never".
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f7.XXXX); cd "$D"; mkdir .git
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\n' > r.toml
for c in "0 2 30 2 *" "0 2 31 4,6,9,11 *" "0 2 31 2 *"; do
  printf '[schedule.monthly_end]\nrunbook = "r.toml"\ncron = "%s"\ntime-zone = "Europe/Madrid"\nexpect-success-within = "31d 2h"\nnotify = { webhook = "https://hooks.example.com/x" }\n' "$c" > s.toml
  echo "== cron \"$c\""; $B check s.toml --color never; echo "check exit $?"
  $B schedules s.toml | grep next
done
