//! The `nova` binary: see the `nova_llm_cli` crate.

fn main() -> std::process::ExitCode {
    nova_llm_cli::run(std::env::args_os())
}
