#!/bin/bash
# A secret's value in a schedule's params file (or inline `params`) reaches the terminal/journal of
# the worker and `runbook check`, and the store (schedule_fires.note): the parameter checks quote
# the value before anything asks whether it is a secret. (`run -p` / `submit -p` / the console
# refuse such a value before quoting it since adv16u F1; schedules were not given that guard.)
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f3.XXXX); cd "$D"; mkdir .git
export RUNBOOK_TEST_SCHEDULE_SECONDS=1 XDG_STATE_HOME=$D/host
export TOKEN=s3cr3t-T0KEN-4f9a
cat > r.toml <<'T'
[runbook]
name = "r"
[secrets.TOKEN]
env = "TOKEN"
[params.kind]
type = "string"
enum = ["daily", "weekly"]
[steps.a]
run = "echo {{ params.kind }}"
T
echo 'kind = "daily"' > p.toml
printf '[schedule.tick]\nrunbook = "r.toml"\nparams-file = "p.toml"\ncron = "*/2 * * * * *"\ntime-zone = "UTC"\n' > s.toml
echo "== A: the worker starts (file valid), then the params file is edited with the secret pasted in"
$B state migrate --state st.db >/dev/null
$B worker --schedules s.toml --state st.db > worker.out 2>&1 & WP=$!
sleep 3; echo "kind = \"$TOKEN\"" > p.toml; sleep 5
kill $WP; wait $WP 2>/dev/null
echo "worker log lines with the secret: $(grep -c "$TOKEN" worker.out)"; grep -m1 "$TOKEN" worker.out
echo "store rows with the secret: $(sqlite3 st.db "SELECT count(*) FROM schedule_fires WHERE note LIKE '%$TOKEN%'" 2>/dev/null || grep -c "$TOKEN" st.db)"
echo "== B: runbook check / a worker starting on that file"
$B check s.toml --color never 2>&1 | grep -m1 "$TOKEN"
$B worker --schedules s.toml --state st.db --color never 2>&1 | grep -m1 "$TOKEN"
echo "== C: inline params in the schedules file: runbook schedules prints it too"
printf '[schedule.tick]\nrunbook = "r.toml"\nparams = { kind = "%s" }\ncron = "0 2 * * *"\ntime-zone = "UTC"\n' "$TOKEN" > s3.toml
$B check s3.toml --color never 2>&1 | grep -m1 "$TOKEN"
