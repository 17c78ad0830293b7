#!/bin/bash
# Team mode: SIGTERM a worker (--grace 1s) while its run is in `finally` (MODE=finally) or in a
# compensation (MODE=compensate). The book: "it interrupts the rest (they journal the
# interruption) and hands them back to the queue, where another worker resumes them".
# Needs PostgreSQL: PG_URL (default: a cluster on /tmp/adv13a-pgsock).
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
MODE=${MODE:-finally}
DB=adv13a_${MODE}_$$
psql -h /tmp/adv13a-pgsock -U postgres -qc "create database $DB" >/dev/null
PG_URL=${PG_URL:-postgres://postgres@localhost/$DB?host=/tmp/adv13a-pgsock}
D=$(mktemp -d /tmp/adv13a-19.XXXX); cd "$D"; export XDG_STATE_HOME=$D/host
$B state migrate --state "$PG_URL" >/dev/null
if [ $MODE = finally ]; then
cat > r.toml <<T
[runbook]
name = "worker-finally"

[steps.work]
run = "echo work >> $D/trace"

[finally.release]
run = "echo release-start >> $D/trace; touch $D/reached; sleep 20; echo release-end >> $D/trace"
T
else
cat > r.toml <<T
[runbook]
name = "worker-comp"

[steps.create]
run = "echo create >> $D/trace"
compensate = { run = "echo undo-start >> $D/trace; touch $D/reached; sleep 20; echo undo-end >> $D/trace" }

[steps.boom]
needs = ["create"]
run = "exit 1"
T
fi
R=$($B submit r.toml --state "$PG_URL" --as ana --yes 2>sub.err | tail -1); echo "submitted: $R"; cat sub.err | tail -2
$B worker --state "$PG_URL" --as w1 --grace 1s > w1.out 2>&1 &
W=$!
for i in $(seq 150); do [ -e reached ] && break; sleep 0.1; done
kill -TERM $W; wait $W; echo "worker 1 rc=$?"
$B show $R --state "$PG_URL" | sed -n 2p
$B audit $R --state "$PG_URL" | cut -c1-100 | tail -6
echo "--- worker 2:"
$B worker --state "$PG_URL" --as w2 --grace 1s > w2.out 2>&1 &
W2=$!; sleep 6; kill -TERM $W2; wait $W2
$B show $R --state "$PG_URL"
echo "--- trace:"; cat trace
