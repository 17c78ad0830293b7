#!/bin/bash
# Durability: kill -9 the engine the moment a step's process exists; the journal must already
# hold that step's `step_started` (else resume would not know it may have run).
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
N=${1:-15}; bad=0
for it in $(seq $N); do
D=$(mktemp -d /tmp/adv13a-27.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "spawn"

[steps.a]
run = "touch a.ran; sleep 5"

[steps.b]
needs = []
run = "touch b.ran; sleep 5"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
while [ ! -e a.ran ] && [ ! -e b.ran ]; do :; done
kill -KILL $P; wait $P 2>/dev/null
R=$(ls runs)
J=$($B audit $R --state state.db 2>&1)
for s in a b; do
  if [ -e $s.ran ] && ! grep -q "step_started $s " <<<"$J"; then echo "BROKEN iter $it: $s ran without step_started ($D)"; bad=1; fi
done
out=$(timeout 10 $B resume $R --state state.db --as oncall --yes 2>&1 | head -1)
case "$out" in *"in doubt"*|*resuming*) ;; *) echo "iter $it: resume said: $out";; esac
done
echo "done bad=$bad"
