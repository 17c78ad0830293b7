//! A file that is a secret's source is read as nothing else (promise 3; red team adv15b,
//! finding 4).
//!
//! A plan quotes its SQL scripts, digests its CA files, runbooks and params file: a secret's
//! file named as one of them would put the secret (or a fingerprint of it) into the plan, its
//! diff and a pull-request comment. The rule is checked once the whole tree of includes is
//! known, so a secret of one runbook and a script of another are compared too; paths are
//! compared lexically normalized (`./`, `a/..`, `//`) and, where the loader can tell, once
//! symbolic links are resolved ([`Loader::canonical`]) and by file identity, `(device,
//! inode)`, which a hard link shares ([`Loader::identity`]; red team adv15c, finding 4).

use super::*;

/// One RB056 error per secret file that is also read as a script, a CA file or a runbook.
pub(super) fn read_as_something_else(top: &Runbook, loader: &dyn Loader) -> Vec<Diagnostic> {
    let secrets = top.secret_files();
    if secrets.is_empty() {
        return Vec::new();
    }
    let mut others: Vec<(String, &'static str)> = top
        .reads()
        .into_iter()
        .map(|r| {
            let what = match r.kind {
                ReadKind::SqlScript => "a SQL script (`sql.file`)",
                ReadKind::CaFile => "a CA file (`ca-file`)",
                ReadKind::ParamsFile => "a params file",
            };
            (r.path, what)
        })
        .collect();
    others.extend(top.sources().iter().map(|s| (s.path.clone(), "a runbook")));
    let key = |p: &str| (normalize(p), loader.canonical(p), loader.identity(p));
    let others: Vec<_> = others.into_iter().map(|(p, what)| (key(&p), p, what)).collect();
    let mut out = Vec::new();
    for s in &secrets {
        let mine = key(&s.path);
        let Some((_, other, what)) = others.iter().find(|(k, _, _)| {
            k.0 == mine.0 || (mine.1.is_some() && k.1 == mine.1) || (mine.2.is_some() && k.2 == mine.2)
        }) else {
            continue;
        };
        let same = if *other == s.path { String::new() } else { format!(" as `{other}`") };
        out.push(
            Diagnostic::error(
                Code::SecretFileRead,
                &s.source,
                s.span,
                format!(
                    "the file `{}` of secret `{}` is also read{same} as {what}, which a plan would quote or digest",
                    s.path, s.secret
                ),
            )
            .with_label("the secret's file")
            .with_help(
                "keep each secret in a file of its own that nothing else names; give the script, certificate or runbook another file",
            ),
        );
    }
    out
}
