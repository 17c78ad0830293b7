#!/bin/bash
# Approvals: quorum, double approval, reject-then-approve, and concurrent approve+resume.
set -u
B=${B:-/work/wt/adv13a/target/debug/runbook}
D=$(mktemp -d /tmp/adv13a-09.XXXX); cd "$D"
cat > r.toml <<'T'
[runbook]
name = "gated"

[steps.prep]
run = "echo prep >> trace"

[steps.gate]
needs = ["prep"]
approval = { prompt = "go?", approvers = ["ana", "luis", "bo"], min-approvals = 2 }

[steps.after]
needs = ["gate"]
run = "echo after >> trace; sleep 0.3"
T
$B run r.toml --state state.db --as oncall --yes < /dev/null > out1 2>&1; echo "run rc=$?"; tail -3 out1
R=$(ls runs)
echo "--- ana approves"; $B approve $R gate --state state.db --as ana 2>&1 | tail -2
echo "--- ANA approves again"; $B approve $R gate --state state.db --as " ANA " 2>&1 | tail -2
echo "--- luis + bo approve concurrently, 3 resumes concurrently"
$B approve $R gate --state state.db --as luis > a1 2>&1 & $B approve $R gate --state state.db --as bo > a2 2>&1 &
for k in 1 2 3; do $B resume $R --state state.db --as oncall --yes > r$k 2>&1 & done; wait
cat a1 a2 | grep -v "^journal"; tail -n2 r1 r2 r3
sleep 1
for k in 1 2 3; do $B resume $R --state state.db --as oncall --yes > s$k 2>&1 & done; wait; tail -n2 s1 s2 s3
$B show $R --state state.db; cat trace
n=$(grep -c after trace); [ "$n" -gt 1 ] && echo "BROKEN: after ran $n times"
