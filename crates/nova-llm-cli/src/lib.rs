//! # nova-llm-cli
//!
//! The `nova` command: one chat turn, a plain completion, or an interactive conversation,
//! through the nova-llm provider (events, metrics, cost, and on request retries, fallback,
//! rate limits and a cache), on the built-in mock or any OpenAI-compatible server.
//!
//! ```text
//! $ cargo run -p nova-llm-cli -- chat "hello"
//! f(hello)
//! $ OPENAI_API_KEY=sk-... nova chat --driver openai --model gpt-4o-mini --stream --stats "Say hi"
//! $ nova chat --driver openai --base-url http://localhost:11434/v1 --model llama3.2 "Say hi"
//! $ nova chat --json-schema person.json "Invent a person"
//! $ nova complete "Once upon a time"
//! $ nova repl --system "You are terse." --budget 4000
//! ```
//!
//! Replies go to stdout, diagnostics to stderr. Exit codes: 0 on success, 2 on a usage
//! error, 1 when the model call fails (one line: the error kind, status and the service's
//! message, then a hint where one helps), 130 when Ctrl-C stopped a stream. The API key is
//! read from `OPENAI_API_KEY` only, never from a flag; a local server needs none.
//!
//! The binary is a thin wrapper over [`run`], which tests and other programs can call:
//!
//! ```
//! use std::process::ExitCode;
//!
//! // The built-in mock answers f(x) to x: no key, no network.
//! assert_eq!(nova_llm_cli::run(["nova", "chat", "hello"]), ExitCode::SUCCESS);
//! // A usage error exits with 2.
//! assert_eq!(nova_llm_cli::run(["nova", "chat"]), ExitCode::from(2));
//! ```
#![doc(test(attr(deny(warnings))))]

mod args;
mod commands;
mod output;
mod serve;
mod setup;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, Common};
use crate::commands::Failure;

/// Runs the `nova` command line `args` (the program name first) and returns its exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "nova: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (result, common) = match cli.command {
        // The gateway runs on a runtime of its own (all cores).
        Command::Serve(a) => return serve::serve(a),
        Command::Chat(a) => {
            let common = common_for_hint(&a.common);
            (runtime.block_on(commands::chat(a)), common)
        }
        Command::Complete(a) => {
            let common = common_for_hint(&a.common);
            (runtime.block_on(commands::complete(a)), common)
        }
        Command::Repl(a) => {
            let common = common_for_hint(&a.common);
            (runtime.block_on(commands::repl(a)), common)
        }
    };
    let mut err = std::io::stderr();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            let _ = writeln!(err, "nova: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Interrupted) => {
            let _ = writeln!(err, "nova: stopped");
            ExitCode::from(130)
        }
        Err(Failure::Io(e)) => {
            let _ = writeln!(err, "nova: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Llm(e)) => {
            let _ = writeln!(err, "nova: error: {e}");
            if let Some(h) = setup::hint(&e, &common) {
                let _ = writeln!(err, "hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What the hint needs of the options, kept after the command consumed them.
fn common_for_hint(c: &Common) -> Common {
    Common {
        driver: c.driver,
        model: c.model.clone(),
        base_url: c.base_url.clone(),
        temperature: None,
        top_p: None,
        max_tokens: None,
        seed: None,
        stop: Vec::new(),
        stats: false,
        retries: 0,
        fallback_driver: Vec::new(),
        fallback_model: Vec::new(),
        fallback_base_url: Vec::new(),
        rpm: None,
        tpm: None,
        cache: false,
    }
}
