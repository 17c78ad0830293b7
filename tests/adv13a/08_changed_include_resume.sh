#!/bin/bash
# Pinned/as-started: change an included runbook (and separately the main one) after a crash; resume must refuse.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
for what in child main env; do
D=$(mktemp -d /tmp/adv13a-08.XXXX); cd "$D"
cat > child.toml <<'T'
[runbook]
name = "child"

[steps.c1]
run = "echo c1-v1 >> trace; touch reached; sleep 30"
idempotent = true
T
cat > r.toml <<'T'
[runbook]
name = "parent"

[steps.a]
run = "echo a >> trace"

[steps.inc]
needs = ["a"]
runbook = { file = "child.toml" }

[steps.z]
needs = ["inc"]
run = "echo z-v1 >> trace"
T
$B run r.toml --state state.db --as oncall --yes > out1 2>&1 &
P=$!
for i in $(seq 100); do [ -e reached ] && break; sleep 0.1; done
kill -KILL $P; wait $P 2>/dev/null; R=$(ls runs); sleep 0.3
case $what in
  child) sed -i 's/c1-v1 >> trace; touch reached; sleep 30/c1-v2 >> trace/' child.toml ;;
  main) sed -i 's/z-v1/z-v2/' r.toml ;;
  env) sed -i 's/c1-v1 >> trace; touch reached; sleep 30/c1-v1 >> trace/' child.toml ;;
esac
echo "=== changed $what:"; timeout 20 $B resume "$R" --state state.db --as oncall --yes 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"; cat trace
done
