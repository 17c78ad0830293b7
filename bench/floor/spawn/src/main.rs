//! `spawn-floor MODE [N]`: start `/usr/bin/true` N times (default 200) one after the other,
//! from a process shaped like the engine (30 MB of touched memory, two idle threads), and
//! print the wall time a start costs. MODE:
//!
//! - `plain`: `Command::status()`, which std does with `posix_spawn` (`vfork`): no
//!   parent-death signal, the floor of any engine;
//! - `preexec`: the parent-death signal set in the child by a `pre_exec` hook, which makes
//!   std `fork` the whole process (its page tables) instead;
//! - a path to `runbook-tie`: started as the engine starts it (`TIE PID /usr/bin/true --
//!   true`), it sets the signal itself and executes the program: two `execve` a step.
//!
//! ```sh
//! cargo build --release --manifest-path bench/floor/spawn/Cargo.toml
//! bench/floor/spawn/target/release/spawn-floor plain 300
//! ```
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(mode) = args.next() else {
        eprintln!("usage: spawn-floor plain|preexec|PATH_TO_RUNBOOK_TIE [N]");
        std::process::exit(2);
    };
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut memory = vec![0u8; 30 << 20];
    for i in (0..memory.len()).step_by(4096) {
        memory[i] = 1;
    }
    for _ in 0..2 {
        std::thread::spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        });
    }
    let me = std::process::id().to_string();
    let started = Instant::now();
    for _ in 0..n {
        let status = match mode.as_str() {
            "plain" => Command::new("/usr/bin/true").status(),
            // SAFETY: the hook calls only prctl(2), async-signal-safe.
            "preexec" => unsafe {
                Command::new("/usr/bin/true")
                    .pre_exec(|| {
                        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                            .map_err(std::io::Error::from)
                    })
                    .status()
            },
            tie => Command::new(tie).args([me.as_str(), "/usr/bin/true", "--", "true"]).status(),
        };
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("spawn-floor: a start failed: {other:?}");
                std::process::exit(1);
            }
        }
    }
    let each = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!("{mode}: {each:.3} ms a start ({n} starts)");
    std::hint::black_box(&memory);
}
