#!/bin/bash
# Promise 1 fuzz: kill -9 the engine at a random moment, then 3 engines resume at once,
# repeatedly, until the run ends. Non-idempotent units must start at most once (no decisions
# are given, so one in doubt must wait). Usage: 07_crash_loop.sh [iterations]
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
N=${1:-20}
bad=0
for it in $(seq $N); do
D=$(mktemp -d /tmp/adv13a-07.XXXX); cd "$D"
cat > child.toml <<'T'
[runbook]
name = "child"

[steps.c1]
run = "echo c1 >> trace; sleep 0.$((RANDOM%3))"
compensate = { run = "echo undo-c1 >> trace" }

[steps.c2]
run = "echo c2 >> trace; sleep 0.1"
T
sed -i 's/\$((RANDOM%3))/2/' child.toml
cat > r.toml <<'T'
[runbook]
name = "crashy"
max-parallel = 3

[defaults]
on-failure = "compensate"

[steps.a]
run = "echo a >> trace; sleep 0.2"
compensate = { run = "echo undo-a >> trace; sleep 0.2" }

[steps.b]
needs = ["a"]
run = "echo b >> trace; if [ ! -e b.flag ]; then touch b.flag; exit 1; fi; sleep 0.2"
retry = { attempts = 3, delay = "200ms" }
compensate = { run = "echo undo-b >> trace; sleep 0.1" }

[steps.c]
needs = ["a"]
run = "echo c >> trace; sleep 0.3"
compensate = { run = "echo undo-c >> trace" }

[steps.inc]
needs = ["a"]
runbook = { file = "child.toml" }

[steps.d]
needs = ["b", "c", "inc"]
run = "echo d >> trace; sleep 0.1; exit 1"

[finally.f]
run = "echo f >> trace; sleep 0.2"
T
$B run r.toml --state state.db --as oncall --yes > out.run 2>&1 &
P=$!
sleep 0.$((RANDOM % 20))$((RANDOM%10))
kill -KILL $P 2>/dev/null; wait $P 2>/dev/null
R=$(ls runs 2>/dev/null | head -1)
[ -z "$R" ] && { cd /; rm -rf "$D"; continue; }
kill_engines() { :; }
skips=()
for round in 1 2 3 4 5; do
  pids=()
  for k in 1 2 3; do
    ( $B resume "$R" --state state.db --as oncall --yes "${skips[@]}" > out.r$round.$k 2>&1; echo $? > rc.r$round.$k ) &
    pids+=($!)
  done
  if [ $((RANDOM % 2)) = 0 ]; then sleep 0.$((RANDOM%9)); kill -KILL $(pgrep -P ${pids[0]} 2>/dev/null) 2>/dev/null; fi
  wait
  skips=()
  for st in $(grep -ho "not idempotent: .*" out.r$round.* 2>/dev/null | sed 's/not idempotent: //; s/,/ /g' | tr ' ' '\n' | sort -u); do skips+=(--skip "$st"); done
  [ ${#skips[@]} -gt 0 ] && skips+=(--reason "treated as done by the fuzzer")
done
cskips=()
for round in 1 2 3; do
  ( $B compensate "$R" --state state.db --as oncall --yes "${cskips[@]}" > out.c$round.1 2>&1 ) & c1=$!
  ( $B compensate "$R" --state state.db --as oncall --yes "${cskips[@]}" > out.c$round.2 2>&1 ) &
  if [ $((RANDOM % 2)) = 0 ]; then sleep 0.$((RANDOM%5)); kill -KILL $(pgrep -P $c1 2>/dev/null) 2>/dev/null; fi
  wait
  cskips=()
  for st in $(grep -ho "not idempotent: .*" out.c$round.* 2>/dev/null | sed 's/not idempotent: //; s/,/ /g' | tr ' ' '\n' | sort -u); do cskips+=(--skip "$st"); done
  [ ${#cskips[@]} -gt 0 ] && cskips+=(--reason "treated as done by the fuzzer")
done
for u in a c c1 c2 f undo-a undo-b undo-c undo-c1; do
  n=$(grep -cx "$u" trace 2>/dev/null); n=${n:-0}
  if [ "$n" -gt 1 ]; then echo "iter $it dir $D: '$u' started $n times"; bad=1; fi
done
nb=$(grep -cx b trace); [ "$nb" -gt 3 ] && { echo "iter $it dir $D: b started $nb times"; bad=1; }
grep -l "panicked" out.* 2>/dev/null | sed "s|^|PANIC in $D/|"
done
echo "done bad=$bad"
