//! Link options of the two binaries (`runbook`, `runbook-tie`); nothing is generated.
//!
//! On Linux with a glibc that reads the format (2.36 and later), both are linked with packed
//! relative relocations (`-z pack-relative-relocs`, `DT_RELR`): `runbook` is a
//! position-independent executable with about 70,000 relative relocations, 1.7 MB of
//! `.rela.dyn` that the dynamic loader reads at every start, which `DT_RELR` says in about
//! 27 KB. Every command starts faster (bench/README.md, issue 13, "packed relocations"); the
//! executable stays position-independent (ASLR kept).
//!
//! A binary linked so needs the C library's `GLIBC_ABI_DT_RELR` version (an older glibc
//! refuses to start it), so the option is given only when the C library the binary will
//! load defines it, as LLVM's own build decides. A linker older than the option (GNU ld
//! before 2.38) ignores it with a warning. Cross builds are left as they are. The build
//! host's glibc decides, so a binary to copy to a host with an older glibc (before 2.36) is
//! built with `RUNBOOK_NO_PACKED_RELOCS=1` (book: installation).

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUNBOOK_NO_PACKED_RELOCS");
    // Binaries to copy to hosts with an older glibc than the build's (red team adv27 R1).
    if std::env::var_os("RUNBOOK_NO_PACKED_RELOCS").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("HOST") == var("TARGET");
    if !(native && var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu") {
        return;
    }
    let arch = var("CARGO_CFG_TARGET_ARCH");
    let folders = [
        format!("/lib/{arch}-linux-gnu"),
        format!("/usr/lib/{arch}-linux-gnu"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ];
    let Some(libc) = folders.iter().map(|f| Path::new(f).join("libc.so.6")).find(|p| p.is_file()) else {
        return;
    };
    println!("cargo::rerun-if-changed={}", libc.display());
    let reads_relr = std::fs::read(&libc)
        .is_ok_and(|bytes| bytes.windows(b"GLIBC_ABI_DT_RELR".len()).any(|w| w == b"GLIBC_ABI_DT_RELR"));
    if reads_relr {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
