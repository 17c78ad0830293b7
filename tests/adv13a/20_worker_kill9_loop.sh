#!/bin/bash
# Team mode, promise 1: kill -9 a worker at a random moment; two workers then reclaim the run
# at once. Non-idempotent steps must start at most once. Needs PostgreSQL on /tmp/adv13a-pgsock.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
N=${1:-3}
for it in $(seq $N); do
DB=adv13a_kill_${it}_$$
psql -h /tmp/adv13a-pgsock -U postgres -qc "create database $DB" >/dev/null
PG_URL="postgres://postgres@localhost/$DB?host=/tmp/adv13a-pgsock"
D=$(mktemp -d /tmp/adv13a-20.XXXX); cd "$D"; export XDG_STATE_HOME=$D/host
$B state migrate --state "$PG_URL" >/dev/null
cat > r.toml <<T
[runbook]
name = "worker-kill"

[steps.a]
run = "echo a >> $D/trace; sleep 0.7"

[steps.b]
run = "echo b >> $D/trace; sleep 0.7"
idempotent = true
retry = { attempts = 2, delay = "300ms" }

[steps.c]
run = "echo c >> $D/trace; sleep 0.7"

[finally.f]
run = "echo f >> $D/trace; sleep 0.3"
T
R=$($B submit r.toml --state "$PG_URL" --as ana --yes 2>/dev/null | tail -1)
$B worker --state "$PG_URL" --as w1 --grace 1s > w1.out 2>&1 &
W=$!
sleep 0.$((RANDOM % 9))$((RANDOM % 10)); sleep $((RANDOM % 2))
kill -KILL $W; wait $W 2>/dev/null
$B worker --state "$PG_URL" --as w2 --grace 1s > w2.out 2>&1 & W2=$!
$B worker --state "$PG_URL" --as w3 --grace 1s > w3.out 2>&1 & W3=$!
sleep 12; kill -TERM $W2 $W3; wait $W2 $W3
st=$($B show $R --state "$PG_URL" | sed -n 2p)
echo "iter $it: $st; trace: $(tr '\n' ' ' < trace)"
for u in a c f; do n=$(grep -cx $u trace); [ "${n:-0}" -gt 1 ] && echo "  BROKEN: $u started $n times (dir $D)"; done
done
