#!/usr/bin/env bash
# The body of a pull request's review comment for runbooks, written by `runbook` itself:
#   1. `runbook check` on every runbook;
#   2. for every runbook whose plan differs from the base revision's (the runbook, a file it
#      includes or its params file changed): what changed (`runbook plan FILE --against BASE`)
#      and the full review document (`runbook plan FILE --format markdown`);
#   3. the runbooks that were removed.
#
# Usage: review-comment.sh BASE OUT_DIR
#   BASE     the pull request's base (a commit, branch or tag); the comparison is made with
#            the merge base of BASE and HEAD, as GitHub shows a pull request's changes.
#   OUT_DIR  where to write comment.md (the comment's body) and plans/*.md (every review
#            document in full, for the workflow's artifact).
# Run it at the top of the repository, on the pull request's head.
#
# Environment:
#   RUNBOOK          the runbook binary (default: runbook, from PATH)
#   RUNBOOK_DIR      the folder of runbooks (default: runbooks); params files are looked for in
#                    RUNBOOK_DIR/params/NAME.ENV.toml
#   RUNBOOK_ENV      ENV above (default: staging)
#   COMMENT_LIMIT    the largest comment, in bytes (default: 60000; GitHub refuses more than
#                    65536 characters): past it, the full review documents are left out of the
#                    comment and only the artifact has them
#
# It also writes OUT_DIR/changed: `yes` when the comment reports anything (a plan changed, a
# runbook added, removed or not comparable, check failed), `no` when no plan changed.
#
# Exit status (the comment is written in all of 0, 3 and 4; post it, then fail the job on 3
# and 4):
#   0  reviewed;
#   3  `runbook check` found invalid runbooks (the comment shows the diagnostics);
#   4  a runbook could not be compared with the base, or not planned: the comment names it,
#      says why, and shows its whole review document when it can be planned;
#   2  usage (BASE is not a commit here); anything else: the review could not be made (a
#      message on standard error, no comment).
set -euo pipefail

usage() { echo "usage: $0 BASE OUT_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
base_arg=$1
out=$2
runbook=${RUNBOOK:-runbook}
dir=${RUNBOOK_DIR:-runbooks}
env_name=${RUNBOOK_ENV:-staging}
limit=${COMMENT_LIMIT:-60000}
export NO_COLOR=1

case $base_arg in -*) echo "$0: BASE must not start with '-': $base_arg" >&2; exit 2 ;; esac
base=$(git rev-parse --verify --quiet --end-of-options "$base_arg^{commit}") || {
    echo "$0: BASE is not a commit here: $base_arg (was the repository fetched with its history? actions/checkout needs fetch-depth: 0)" >&2
    exit 2
}
merge_base=$(git merge-base "$base" HEAD) || { echo "$0: $base_arg and HEAD have no common ancestor" >&2; exit 2; }
short=$(git rev-parse --short=12 "$merge_base")

mkdir -p "$out/plans"
comment=$out/comment.md
full=$out/full.md
: > "$full"

# The runbooks of the head: top-level TOML files of RUNBOOK_DIR (params files live below it).
runbooks=()
while IFS= read -r -d '' file; do runbooks+=("$file"); done \
    < <(find "$dir" -maxdepth 1 -type f -name '*.toml' -print0 | LC_ALL=C sort -z)

# A file name as Markdown inline code, whatever characters it holds (a pull request chooses its
# file names): the fence is longer than any run of backticks inside.
code() {
    local fence='`'
    while [[ $1 == *"$fence"* ]]; do fence="$fence\`"; done
    local pad=''
    [[ $1 == \`* || $1 == *\` ]] && pad=' '
    printf '%s%s%s%s%s' "$fence" "$pad" "$1" "$pad" "$fence"
}

# Standard input as a fenced text block whose fence no line inside can close.
fenced_text() {
    local text fence='```'
    text=$(cat)
    while grep -qF -- "$fence" <<<"$text"; do fence="$fence\`"; done
    printf '%stext\n%s\n%s\n' "$fence" "$text" "$fence"
}

params_for() {
    local name
    name=$(basename "$1" .toml)
    local params="$dir/params/$name.$env_name.toml"
    if [ -f "$params" ]; then printf '%s\n' "--params-file" "$params"; fi
}

{
    echo "<!-- runbook-review -->"
    echo "**Runbook review**"
    echo
} > "$comment"

# 1. check: every runbook at once, every problem at once.
check_status=0
check_out=$("$runbook" check --color never "${runbooks[@]}" 2>&1) || check_status=$?
if [ "$check_status" -ne 0 ]; then
    {
        echo "**\`runbook check\` found problems** (exit status $check_status); no plan was made."
        echo
        printf '%s\n' "$check_out" | fenced_text
    } >> "$comment"
    echo yes > "$out/changed"
    exit 3
fi
{
    echo "\`runbook check\`: ${#runbooks[@]} runbook(s) valid."
    echo
    echo "Compared with \`$short\`, where this change branched off its base."
    echo
} >> "$comment"

# 2. The runbooks whose plan changed, the new ones, and those that could not be compared.
unchanged=()
changed=0
uncompared=0
for file in "${runbooks[@]}"; do
    mapfile -t params < <(params_for "$file")
    status=0
    diff_md=$("$runbook" plan "$file" "${params[@]}" --against "$merge_base" --format markdown 2>"$out/stderr") || status=$?
    case $status in
        0) unchanged+=("$file"); continue ;;
        1)  # The diff's own heading (`## Plan diff of NAME`) opens the runbook's section.
            {
                printf '%s\n' "$diff_md"
                echo
            } >> "$comment" ;;
        *)  # Never a silent pass: the runbook is named with the reason, and its review
            # document follows in full (an invalid or parameterless version at the base,
            # a params file that did not exist then...).
            uncompared=$((uncompared + 1))
            {
                echo "## $(code "$file"): could not be compared with \`$short\`"
                echo
                echo "\`runbook plan --against\` exited with status $status; review its whole document (below, or in the artifact \`runbook-review\` when the comment is too long)."
                echo
                fenced_text < "$out/stderr"
                echo
            } >> "$comment" ;;
    esac
    changed=$((changed + 1))
    plan_file="$out/plans/$(basename "$file" .toml).md"
    status=0
    "$runbook" plan "$file" "${params[@]}" --format markdown > "$plan_file" 2>"$out/stderr" || status=$?
    if [ "$status" -ne 0 ]; then
        uncompared=$((uncompared + 1))
        {
            echo "$(code "$file") cannot be planned here (exit status $status):"
            echo
            fenced_text < "$out/stderr"
            echo
        } >> "$comment"
        continue
    fi
    {
        name=$(basename "$file" .toml)
        name=${name//&/&amp;}; name=${name//</&lt;}; name=${name//>/&gt;}
        echo "<details><summary>The review document of <code>$name</code></summary>"
        echo
        cat "$plan_file"
        echo
        echo "</details>"
        echo
    } >> "$full"
done

# 3. Runbooks that left the reviewed set: at the base, a top-level TOML file of RUNBOOK_DIR
# that is not one now (deleted, moved to another folder, renamed to another extension).
removed=()
while IFS= read -r -d '' f; do
    case $f in "$dir"/*/*) continue ;; *.toml) ;; *) continue ;; esac
    present=no
    for file in "${runbooks[@]}"; do [ "$file" = "$f" ] && present=yes && break; done
    [ "$present" = yes ] || removed+=("$f")
done < <(git ls-tree -z --name-only "$merge_base" -- "$dir/")

{
    if [ "$changed" -eq 0 ] && [ ${#removed[@]} -eq 0 ]; then
        echo "No runbook's plan changed."
        echo
    fi
    for file in "${removed[@]}"; do
        echo "## $(code "$file"): removed"
        echo
        echo "It was a runbook at \`$short\` and is not one of \`$dir/*.toml\` now (deleted, moved or renamed)."
        echo
    done
    if [ ${#unchanged[@]} -gt 0 ]; then
        printf 'Plans unchanged:'
        sep=' '
        for file in "${unchanged[@]}"; do printf '%s%s' "$sep" "$(code "$file")"; sep=', '; done
        echo
        echo
    fi
} >> "$comment"

if [ -s "$full" ]; then
    if [ $(( $(wc -c < "$comment") + $(wc -c < "$full") )) -le "$limit" ]; then
        cat "$full" >> "$comment"
    else
        echo "The full review documents are too long for a comment: they are in the workflow run's artifact \`runbook-review\` (\`plans/*.md\`)." >> "$comment"
    fi
fi
rm -f "$full" "$out/stderr"
if [ "$changed" -gt 0 ] || [ ${#removed[@]} -gt 0 ]; then echo yes > "$out/changed"; else echo no > "$out/changed"; fi
if [ "$uncompared" -gt 0 ]; then exit 4; fi
