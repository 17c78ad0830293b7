//! Colour in run output (issue 17): `ok` green, `undo` yellow, failures red, on a real
//! pseudo-terminal only; never in a pipe, never with `NO_COLOR` set (non-empty, as
//! no-color.org says), and `--color always|never` overrides. Colour wraps only the engine's
//! own words: a step that prints escape sequences still has them escaped.

use std::process::Command;
use std::time::Duration;

use crate::pty::Terminal;
use crate::support::{Output, Scratch, bin};

/// `a` succeeds (its compensation prints an escape sequence), `b` fails: ok, FAILED, undo.
const RUNBOOK: &str = r#"
[runbook]
name = "colours"
[steps.a]
run = '''printf 'a says \033[31mred\n''''
compensate = { cmd = ["printf", 'undoing\033[2J\n'] }
[steps.b]
run = "exit 1"
needs = ["a"]
"#;

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";

fn command(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .args(["--state", &s.state()])
        .current_dir(s.path())
        .env_remove("NO_COLOR")
        .env_remove("RUNBOOK_STATE")
        .env_remove("CLICOLOR_FORCE")
        .envs(env.iter().copied());
    cmd
}

/// Everything `runbook ARGS` wrote on a pseudo-terminal, once it ended.
fn on_terminal(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut t = Terminal::spawn(command(s, args, env));
    t.wait_within(Duration::from_secs(60));
    t.screen()
}

fn in_pipe(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    Output::from(command(s, args, env).output().expect("runs"))
}

fn coloured(text: &str) -> bool {
    text.contains(GREEN) || text.contains(YELLOW) || text.contains(RED)
}

#[test]
fn run_output_is_coloured_on_a_terminal_only() {
    let s = Scratch::new(RUNBOOK);
    let screen = on_terminal(&s, &["run", "r.toml"], &[]);
    assert!(screen.contains(&format!("{GREEN}ok\x1b[0m a")), "ok is green: {screen:?}");
    assert!(screen.contains(&format!("{RED}FAILED\x1b[0m b")), "FAILED is red: {screen:?}");
    assert!(screen.contains(&format!("{YELLOW}undo\x1b[0m a")), "undo is yellow: {screen:?}");
    // What the steps printed stays escaped: their sequences never reach the terminal.
    assert!(screen.contains(r"a | a says \u{1b}[31mred"), "{screen:?}");
    assert!(!screen.contains("\x1b[31mred"), "a step's escape reached the terminal: {screen:?}");
    assert!(!screen.contains("\x1b[2J"), "a compensation's escape reached the terminal: {screen:?}");
    let run = s.latest_run();

    // `show` and `runs` colour the statuses too.
    let show = on_terminal(&s, &["show", &run], &[]);
    assert!(show.contains(RED) && show.contains(GREEN), "{show:?}");
    let runs = on_terminal(&s, &["runs"], &[]);
    assert!(runs.contains(&format!("{RED}failed")), "{runs:?}");

    // A pipe, NO_COLOR on a terminal, and --color never: no colour.
    for args in [&["show", &run][..], &["runs"][..]] {
        let piped = in_pipe(&s, args, &[]);
        assert!(!coloured(&piped.stdout) && !coloured(&piped.stderr), "{args:?} in a pipe: {piped:?}");
        let plain = on_terminal(&s, args, &[("NO_COLOR", "1")]);
        assert!(!coloured(&plain), "{args:?} with NO_COLOR=1: {plain:?}");
        let mut never = args.to_vec();
        never.extend(["--color", "never"]);
        let plain = on_terminal(&s, &never, &[]);
        assert!(!coloured(&plain), "{args:?} --color never: {plain:?}");
        // `--color always` colours a pipe, and wins over NO_COLOR.
        let mut always = args.to_vec();
        always.extend(["--color", "always"]);
        let forced = in_pipe(&s, &always, &[("NO_COLOR", "1")]);
        assert!(coloured(&forced.stdout), "{args:?} --color always: {forced:?}");
    }
    // An empty NO_COLOR is not set (no-color.org): colours stay on a terminal.
    let empty = on_terminal(&s, &["runs"], &[("NO_COLOR", "")]);
    assert!(coloured(&empty), "{empty:?}");
    let piped = in_pipe(&s, &["run", "r.toml"], &[]);
    assert!(!coloured(&piped.stdout), "{piped:?}");
    let plain = on_terminal(&s, &["run", "r.toml"], &[("NO_COLOR", "1")]);
    assert!(!coloured(&plain), "{plain:?}");
}
