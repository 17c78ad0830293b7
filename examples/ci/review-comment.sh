#!/usr/bin/env bash
# The body of a pull request's review comment for runbooks, written by `runbook` itself:
#   1. `runbook check` on every runbook;
#   2. for every runbook and every environment it has a params file for, when its plan differs
#      from the base revision's (the runbook, a file it includes or the params file changed):
#      what changed (`runbook plan FILE --params-file P --against BASE`) and the full review
#      document (`runbook plan FILE --params-file P --format markdown`);
#   3. the runbooks and params files that left the reviewed set (deleted, moved, renamed).
#
# Usage: review-comment.sh BASE OUT_DIR
#   BASE     the pull request's base (a commit, branch or tag); the comparison is made with
#            the merge base of BASE and HEAD, as GitHub shows a pull request's changes.
#   OUT_DIR  where to write comment.md (the comment's body, at most COMMENT_LIMIT bytes),
#            comment-full.md (the same, never cut) and plans/*.md (every review document in
#            full), for the workflow's artifact.
# Run it at the top of the repository, on the pull request's head. Run the BASE's copy of
# this script (the workflow does), not the pull request's: the comment is only as
# trustworthy as the code that writes it.
#
# Environment:
#   RUNBOOK          the runbook binary (default: runbook, from PATH)
#   RUNBOOK_DIR      the folder of runbooks (default: runbooks); a runbook NAME.toml is planned
#                    once per params file RUNBOOK_DIR/params/NAME.ENV.toml, or once without
#                    parameters when it has none
#   RUNBOOK_ENV      review only this ENV (default: every environment)
#   COMMENT_LIMIT    the largest comment, in bytes (default: 60000; GitHub refuses more than
#                    65536 characters): past it, the full review documents are left out of the
#                    comment; if the rest is still too long, the comment only lists what
#                    changed and points to comment-full.md in the artifact
#
# It also writes OUT_DIR/changed: `yes` when the comment reports anything (a plan changed, a
# runbook added, removed or not comparable, check failed), `no` when no plan changed.
#
# Exit status (the comment is written in all of 0, 3 and 4; post it, then fail the job on 3
# and 4):
#   0  reviewed;
#   3  `runbook check` found invalid runbooks (the comment shows the diagnostics);
#   4  a runbook could not be compared with the base, or not planned, or has a file name
#      with control characters: the comment names it, says why, and shows its whole review
#      document when it can be planned;
#   2  usage (BASE is not a commit here); anything else: the review could not be made (a
#      message on standard error, no comment).
set -euo pipefail

usage() { echo "usage: $0 BASE OUT_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
base_arg=$1
out=$2
runbook=${RUNBOOK:-runbook}
dir=${RUNBOOK_DIR:-runbooks}
only_env=${RUNBOOK_ENV:-}
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
comment=$out/comment-full.md
full=$out/full.md
: > "$full"

# A name shown with every byte that is not printable ASCII as a shell-quoted escape
# ($'db-\342\200\256lmth.toml'): not only control characters (a line break could forge a
# line of the comment or open an HTML block), but a bidi override (U+202E draws the rest of
# the name reversed), a line separator, a zero-width or look-alike letter, which no POSIX
# class names in every locale. Byte by byte, in the C locale.
escaped() {
    local LC_ALL=C
    local s=$1
    if [[ $s == *[^\ -~]* ]]; then s=$(printf '%q' "$s"); fi
    printf '%s' "$s"
}

# A file name as Markdown inline code, whatever characters it holds (a pull request chooses
# its file names): shown by `escaped`, and the fence is longer than any run of backticks
# inside.
code() {
    local s
    s=$(escaped "$1")
    local fence='`'
    while [[ $s == *"$fence"* ]]; do fence="$fence\`"; done
    local pad=''
    [[ $s == \`* || $s == *\` ]] && pad=' '
    printf '%s%s%s%s%s' "$fence" "$pad" "$s" "$pad" "$fence"
}

# A name for HTML text (the <summary> of a folded document): escaped, on one line.
html_text() {
    local s
    s=$(escaped "$1")
    s=${s//&/&amp;}; s=${s//</&lt;}; s=${s//>/&gt;}
    printf '%s' "$s"
}

# Standard input as a fenced text block whose fence no line inside can close.
fenced_text() {
    local text fence='```'
    text=$(cat)
    while grep -qF -- "$fence" <<<"$text"; do fence="$fence\`"; done
    printf '%stext\n%s\n%s\n' "$fence" "$text" "$fence"
}

# Top-level TOML files of RUNBOOK_DIR at HEAD (regular files and symbolic links: `runbook`
# follows a link, so the review does too); params files live below it.
runbooks=()
while IFS= read -r -d '' file; do runbooks+=("$file"); done \
    < <(find "$dir" -maxdepth 1 \( -type f -o -type l \) -name '*.toml' -print0 | LC_ALL=C sort -z)

# The params files of the runbook NAME at HEAD, one per environment (RUNBOOK_ENV keeps one).
# Only files of `params/` in the runbooks' folder: `runbook` holds those to the folder rule
# (a link out, or a linked `params/`, is refused; red team adv16r F3).
params_of() {
    local name=$1 p
    for p in "$dir/params/$name".*.toml; do
        [ -e "$p" ] || continue
        # NAME.ENV.toml with ENV a single word: `db.restore.staging.toml` belongs to the
        # runbook `db.restore`, not to `db` (red team adv15c F7).
        local env_part=${p#"$dir/params/$name".}
        env_part=${env_part%.toml}
        [[ $env_part == *.* ]] && continue
        if [ -n "$only_env" ] && [ "$p" != "$dir/params/$name.$only_env.toml" ]; then continue; fi
        printf '%s\0' "$p"
    done
}

{
    echo "<!-- runbook-review -->"
    echo "**Runbook review**"
    echo
} > "$comment"

finish() {
    # The comment as posted: whole when it fits; else without the full documents; else only
    # the lines that name what changed, and where the rest is.
    local posted=$out/comment.md
    if [ -s "$full" ] && [ $(( $(wc -c < "$comment") + $(wc -c < "$full") )) -le "$limit" ]; then
        cat "$comment" "$full" > "$posted"
    elif [ "$(wc -c < "$comment")" -le "$(( limit - 300 ))" ]; then
        cp "$comment" "$posted"
        if [ -s "$full" ]; then
            echo "The full review documents are too long for a comment: they are in the workflow run's artifact \`runbook-review\` (\`plans/*.md\`)." >> "$posted"
        fi
    else
        {
            echo "<!-- runbook-review -->"
            echo "**Runbook review**"
            echo
            echo "The review is $(wc -c < "$comment") bytes, more than a comment holds: read it whole in the workflow run's artifact \`runbook-review\` (\`comment-full.md\`, and \`plans/*.md\`). What it covers:"
            echo
            grep -E '^(## |\*\*`runbook check`)' "$comment" | sed 's/^## /- /' || true
        } | LC_ALL=C awk -v max="$(( limit - 200 ))" '{ n += length($0) + 1; if (n > max) { cut = 1; exit } print } END { if (cut) print "\n(the list is cut here: the rest is in comment-full.md)" }' > "$posted"
    fi
    if [ -s "$full" ]; then cat "$full" >> "$comment"; fi
    rm -f "$full" "$out/stderr"
}

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
    finish
    exit 3
fi
{
    echo "\`runbook check\`: ${#runbooks[@]} runbook(s) valid."
    echo
    echo "Compared with \`$short\`, where this change branched off its base."
    echo
} >> "$comment"

# 2. Every runbook in every environment: the plans that changed, the new ones, and those that
# could not be compared.
unchanged=()        # the runbook files whose plan did not change...
unchanged_params=() # ...and the params file each was planned with ('' for none)
changed=0
uncompared=0
for file in "${runbooks[@]}"; do
    name=$(basename "$file" .toml)
    if [[ $file == *[[:cntrl:]]* ]]; then
        uncompared=$((uncompared + 1))
        changed=$((changed + 1))
        {
            echo "## $(code "$file"): not reviewed"
            echo
            echo "Its name holds control characters (a line break, a tab...). Rename it."
            echo
        } >> "$comment"
        continue
    fi
    link=''
    if [ -L "$file" ]; then link=" (a symbolic link to $(code "$(readlink "$file")"))"; fi
    envs=()
    while IFS= read -r -d '' p; do envs+=("$p"); done < <(params_of "$name")
    [ ${#envs[@]} -gt 0 ] || envs=('')
    for params_file in "${envs[@]}"; do
        args=()
        label=$file
        if [ -n "$params_file" ]; then
            args=(--params-file "$params_file")
            label="$file with $params_file"
        fi
        status=0
        diff_md=$("$runbook" plan "$file" "${args[@]}" --against "$merge_base" --format markdown 2>"$out/stderr") || status=$?
        case $status in
            0) unchanged+=("$file"); unchanged_params+=("$params_file"); continue ;;
            1)  # The diff's own heading (`## Plan diff of NAME`) opens the section; the file,
                # the environment and a link follow it.
                {
                    # Not `| head -n 1`: with pipefail, head closing the pipe early made
                    # printf die of SIGPIPE on a long diff, and the script exit 141.
                    printf '%s\n' "${diff_md%%$'\n'*}"
                    echo
                    printf '%s' "$(code "$file")$link"
                    if [ -n "$params_file" ]; then printf ' with %s' "$(code "$params_file")"; fi
                    echo
                    printf '%s\n' "$diff_md" | tail -n +2
                    echo
                } >> "$comment" ;;
            *)  # Never a silent pass: the runbook is named with the reason, and its review
                # document follows in full (an invalid or parameterless version at the base, a
                # params file that did not exist then...).
                uncompared=$((uncompared + 1))
                {
                    printf '## %s' "$(code "$file")"
                    if [ -n "$params_file" ]; then printf ' with %s' "$(code "$params_file")"; fi
                    echo ": could not be compared with \`$short\`"
                    echo
                    [ -z "$link" ] || { printf 'It is%s.\n\n' "$link"; }
                    echo "\`runbook plan --against\` exited with status $status; review its whole document (below, or in the artifact \`runbook-review\` when the comment is too long)."
                    echo
                    fenced_text < "$out/stderr"
                    echo
                } >> "$comment" ;;
        esac
        changed=$((changed + 1))
        plan_file="$out/plans/$name.md"
        if [ -n "$params_file" ]; then
            env_of=$(basename "$params_file" .toml)
            plan_file="$out/plans/$name.${env_of#"$name".}.md"
        fi
        status=0
        "$runbook" plan "$file" "${args[@]}" --format markdown > "$plan_file" 2>"$out/stderr" || status=$?
        if [ "$status" -ne 0 ]; then
            uncompared=$((uncompared + 1))
            {
                echo "$(code "$label") cannot be planned here (exit status $status):"
                echo
                fenced_text < "$out/stderr"
                echo
            } >> "$comment"
            continue
        fi
        {
            echo "<details><summary>The review document of <code>$(html_text "$name")</code>${params_file:+ with <code>$(html_text "$params_file")</code>}</summary>"
            echo
            cat "$plan_file"
            echo
            echo "</details>"
            echo
        } >> "$full"
    done
done

# 3. What left the reviewed set: at the base, a top-level TOML file of RUNBOOK_DIR or a params
# file that is not one now (deleted, moved to another folder, renamed to another extension).
head_files=("${runbooks[@]}")
while IFS= read -r -d '' p; do head_files+=("$p"); done \
    < <(find "$dir/params" -maxdepth 1 \( -type f -o -type l \) -name '*.toml' -print0 2>/dev/null | LC_ALL=C sort -z)
removed=()
while IFS= read -r -d '' f; do
    case $f in "$dir"/params/*/*) continue ;; "$dir"/params/*.toml) ;; "$dir"/*/*) continue ;; *.toml) ;; *) continue ;; esac
    present=no
    for h in "${head_files[@]}"; do [ "$h" = "$f" ] && present=yes && break; done
    [ "$present" = yes ] || removed+=("$f")
done < <(git ls-tree -r -z --name-only "$merge_base" -- "$dir/" | LC_ALL=C sort -z)

{
    if [ "$changed" -eq 0 ] && [ ${#removed[@]} -eq 0 ]; then
        echo "No runbook's plan changed."
        echo
    fi
    for f in "${removed[@]}"; do
        echo "## $(code "$f"): removed"
        echo
        echo "It was at \`$short\` and is not here now (deleted, moved or renamed)."
        echo
    done
    if [ ${#unchanged[@]} -gt 0 ]; then
        printf 'Plans unchanged:'
        sep=' '
        for i in "${!unchanged[@]}"; do
            printf '%s%s' "$sep" "$(code "${unchanged[$i]}")"
            if [ -n "${unchanged_params[$i]}" ]; then printf ' with %s' "$(code "${unchanged_params[$i]}")"; fi
            sep=', '
        done
        echo
        echo
    fi
} >> "$comment"

finish
if [ "$changed" -gt 0 ] || [ ${#removed[@]} -gt 0 ]; then echo yes > "$out/changed"; else echo no > "$out/changed"; fi
if [ "$uncompared" -gt 0 ]; then exit 4; fi
