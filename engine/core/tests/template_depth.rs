//! Templates nested in any mix of minijinja's recursive constructs either pass
//! `template::limits` and then compile, list their variables and render on a 2 MiB thread
//! (the smallest stack a template meets), or are refused by it: a template never reaches
//! the parser deep enough to overflow its stack (issue 11, promise 5). Set
//! `PROPTEST_CASES` for a longer run.

use proptest::prelude::*;
use runbook_core::template::{self, Compiled, Context, Mode};

/// One level of nesting around `inner`.
fn wrap(kind: u8, inner: String) -> String {
    match kind % 9 {
        0 => format!("not {inner}"),
        1 => format!("({inner})"),
        2 => format!("{inner} + x"),
        3 => format!("[{inner}]"),
        4 => format!("{inner}|lower"),
        5 => format!("x ~ {inner}"),
        6 => format!("{inner} if x else x"),
        7 => format!("{{'k': {inner}}}"),
        _ => format!("-{inner}"),
    }
}

fn nested(kinds: &[u8]) -> String {
    kinds.iter().fold("x".to_string(), |inner, &k| wrap(k, inner))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn nested_templates_are_refused_or_safe(kinds in proptest::collection::vec(any::<u8>(), 1..2_000)) {
        let expr = nested(&kinds);
        let text = format!("{{{{ {expr} }}}}");
        let expected_refused = template::nesting(&expr) > template::MAX_NESTING;
        prop_assert_eq!(template::limits(&text, false).is_err(), expected_refused);
        prop_assert_eq!(template::limits(&expr, true).is_err(), expected_refused);
        // Past the bound nothing is compiled; under it, compiling is safe on a small stack.
        let survived = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let ctx = Context::new(&serde_json::json!({ "x": "a" }));
                if let Ok(c) = Compiled::new(&text, Mode::Plain) {
                    let _ = c.vars();
                    let _ = c.render(&ctx);
                }
                let _ = template::expr_vars(&expr);
                let _ = template::eval(&expr, &ctx);
            })
            .expect("thread")
            .join()
            .is_ok();
        prop_assert!(survived);
    }
}
