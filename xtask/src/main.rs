//! Repository automation, run as `cargo xtask <command>`.
//!
//! - `ci`: exactly what `.ci/run` runs: format check, clippy with warnings denied on every
//!   target, every test (unit, integration, doc), and the docs with warnings denied.
//! - `bench`: the criterion benchmarks, then a table of their medians, then the end-to-end
//!   load benchmark against async-openai (`tests/load`, a workspace of its own), then the
//!   gateway's against LiteLLM's proxy (`bench-gateway`).
//! - `bench-gateway`: only the gateway's load benchmark (installs LiteLLM in a venv).
//! - `fuzz [SECONDS]`: every cargo-fuzz target for a bounded time (default 60 s each),
//!   seeded with the committed corpus. Not part of CI.
//! - `instructions`: instructions per call of each client of the load benchmark, counted
//!   by callgrind (steady where times are not); needs valgrind. Not part of CI.
//!
//! The repository rules that can be checked by reading files (every crate inherits the
//! workspace lints, every source file starts with a `//!` line) are `#[test]`s in `tidy`.

// A command-line tool: printing to the terminal is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench_table;
mod instructions;
#[cfg(test)]
mod tidy;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("bench-gateway") => bench_gateway(),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str)),
        Some("instructions") => instructions::run(&root(), cargo()),
        Some("help" | "--help" | "-h") | None => {
            usage();
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; run `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn usage() {
    eprintln!(
        "usage: cargo xtask <command>\n\n\
         commands:\n  \
         ci      fmt check, clippy -D warnings, all tests (with doctests), docs -D warnings\n  \
         bench   run the criterion benchmarks and print a table of medians, then the load benchmarks\n  \
         bench-gateway  the gateway against LiteLLM's proxy (installs LiteLLM in target/bench-venv)\n  \
         fuzz    run every fuzz target for SECONDS (default 60) each; needs cargo-fuzz\n  \
         instructions  instructions per call of each load-benchmark client; needs valgrind"
    );
}

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(step: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("\n==> {step}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step}: failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", clippy)?;

    let mut test = cargo();
    test.args(["test", "--workspace", "--all-features"]);
    run(
        "cargo test --workspace (unit, integration and doc tests)",
        test,
    )?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc -D warnings", doc)?;

    eprintln!("\nxtask ci: all steps passed");
    Ok(())
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace"]).args(extra);
    run("cargo bench --workspace", cmd)?;
    let table = bench_table::render(&root().join("target").join("criterion"))?;
    println!("{table}");

    // The end-to-end load benchmark against async-openai: its own workspace (so that
    // async-openai is built only here), release build, a table of its own.
    let mut load = cargo();
    load.args([
        "run",
        "--release",
        "--manifest-path",
        "tests/load/Cargo.toml",
    ])
    .env("CARGO_TARGET_DIR", root().join("target").join("load"));
    run("end-to-end load benchmark (tests/load)", load)?;
    bench_gateway()
}

/// The gateway's load benchmark side by side with LiteLLM's proxy: LiteLLM is installed
/// here (in a venv under `target/`, never by CI), then `tests/load`'s `gateway` binary runs
/// both over the same upstream. `NOVA_BENCH_SECONDS`, `NOVA_BENCH_RATES` and
/// `NOVA_BENCH_SOAK_MINUTES` pass through; without Python the run goes on without LiteLLM.
fn bench_gateway() -> Result<(), String> {
    let venv = root().join("target").join("bench-venv");
    let litellm = venv.join("bin").join("litellm");
    if !litellm.exists() {
        let mut mk = Command::new("python3");
        mk.args(["-m", "venv"]).arg(&venv);
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "--quiet", "litellm[proxy]"]);
        if let Err(e) = run("python3 -m venv target/bench-venv", mk)
            .and_then(|()| run("pip install litellm[proxy]", pip))
        {
            eprintln!("xtask: LiteLLM not installed ({e}); the gateway runs alone");
        }
    }
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--manifest-path",
        "tests/load/Cargo.toml",
        "--bin",
        "gateway",
    ])
    .env("CARGO_TARGET_DIR", root().join("target").join("load"));
    if litellm.exists() {
        cmd.env("NOVA_BENCH_LITELLM", &litellm);
    }
    run(
        "gateway load benchmark against LiteLLM (tests/load --bin gateway)",
        cmd,
    )
}

/// Fuzz crates (relative to the root) and their targets.
const FUZZ: &[(&str, &[&str])] = &[
    (
        "crates/nova-llm-openai/fuzz",
        &["sse_stream", "decode_response"],
    ),
    (
        "crates/nova-llm-provider/fuzz",
        &["cache_key", "cached_reply"],
    ),
];

fn fuzz(seconds: Option<&str>) -> Result<(), String> {
    let seconds: u64 = match seconds {
        None => 60,
        Some(s) => s
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?,
    };
    let mut check = cargo();
    check.args(["fuzz", "--version"]);
    let installed = check.output().map(|o| o.status.success()).unwrap_or(false);
    if !installed {
        return Err("cargo-fuzz is not installed: run `cargo install cargo-fuzz`".into());
    }
    for (dir, targets) in FUZZ {
        let fuzz_dir = root().join(dir);
        for target in *targets {
            let work = root().join("target").join("fuzz-corpus").join(target);
            std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
            let seeds = fuzz_dir.join("seeds").join(target);
            let mut cmd = cargo();
            // cargo-fuzz passes nightly-only sanitizer flags; the stable compiler accepts
            // them when bootstrapping is allowed.
            cmd.env("RUSTC_BOOTSTRAP", "1")
                .arg("fuzz")
                .arg("run")
                .arg("--fuzz-dir")
                .arg(&fuzz_dir)
                .arg(target)
                .arg(&work)
                .arg(&seeds)
                .arg("--")
                .arg(format!("-max_total_time={seconds}"));
            run(&format!("fuzz {target} for {seconds} s"), cmd)?;
        }
    }
    eprintln!("\nxtask fuzz: no crash in any target");
    Ok(())
}
