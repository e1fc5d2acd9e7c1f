//! The commands: `chat`, `complete`, `repl`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use nova_llm_core::{
    ChatStream, CompletionRequest, Dialog, LlmDriver, LlmError, StreamEvent, next_event,
};
use nova_llm_provider::context::Conversation;
use nova_llm_provider::{CallOptions, EventKind, EventReceiver, Provider};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::args::{ChatArgs, Common, CompleteArgs, ReplArgs};
use crate::output::{Spinner, stats_line};
use crate::setup;

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The model call failed (exit 1).
    Llm(LlmError),
    /// Bad input on the command line (exit 2).
    Usage(String),
    /// Ctrl-C (exit 130).
    Interrupted,
    /// Writing the output failed (exit 1).
    Io(std::io::Error),
}

impl From<LlmError> for Failure {
    fn from(e: LlmError) -> Self {
        Failure::Llm(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure::Io(std::io::Error::other(e)))
}

/// Prints what the stats subscriber saw of the call.
fn print_stats(events: &mut Option<EventReceiver>) -> Result<(), Failure> {
    let Some(rx) = events else {
        return Ok(());
    };
    for e in rx.drain() {
        if let EventKind::Completed(c) = &e.kind {
            writeln!(std::io::stderr(), "{}", stats_line(c))?;
        }
    }
    Ok(())
}

/// Prints a stream: text deltas (or, with `json`, every event as a JSON line) until its
/// end; Ctrl-C stops it.
async fn print_stream(
    opened: Result<ChatStream, LlmError>,
    json: bool,
    spinner: &mut Spinner,
) -> Result<(), Failure> {
    let mut stream = match opened {
        Ok(s) => s,
        Err(e) => {
            spinner.stop();
            return Err(e.into());
        }
    };
    let mut out = std::io::stdout();
    // Polled first, so Ctrl-C is caught from before the first byte is printed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut ctrl_c => {
                spinner.stop();
                writeln!(out)?;
                return Err(Failure::Interrupted);
            }
            item = next_event(&mut stream) => item,
        };
        let Some(item) = item else {
            break;
        };
        spinner.stop();
        let event = item?;
        if json {
            writeln!(out, "{}", serde_json::to_string(&event).unwrap_or_default())?;
        } else if let StreamEvent::TextDelta { text } = &event {
            write!(out, "{text}")?;
            out.flush()?;
        }
    }
    if !json {
        writeln!(out)?;
    }
    Ok(())
}

/// Prints a whole reply: its text, or with `json` the whole response.
fn print_reply(json: bool, whole: &impl serde::Serialize, text: &str) -> Result<(), Failure> {
    let shown = if json {
        to_json(whole)?
    } else {
        text.to_owned()
    };
    writeln!(std::io::stdout(), "{shown}")?;
    Ok(())
}

fn stats_receiver(c: &Common, p: &Provider) -> Option<EventReceiver> {
    c.stats.then(|| p.subscribe())
}

pub(crate) async fn chat(a: ChatArgs) -> Result<(), Failure> {
    let p = setup::provider(&a.common, false).map_err(Failure::Llm)?;
    let mut events = stats_receiver(&a.common, &p);
    let mut dialog = Dialog::new();
    if let Some(s) = &a.system {
        dialog = dialog.system(s);
    }
    let mut request = setup::request(&a.common, dialog.user(&a.prompt))?;
    let mut spinner = Spinner::start();
    if let Some(path) = &a.json_schema {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
        let schema: Value = serde_json::from_str(&text)
            .map_err(|e| Failure::Usage(format!("{} is not JSON: {e}", path.display())))?;
        let name = path
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            })
            .unwrap_or_else(|| "answer".into());
        request = request.json_schema(name, schema);
        let result = p.structured(request).await;
        spinner.stop();
        let structured = result?;
        let shown = if a.json {
            to_json(&structured.response)?
        } else {
            to_json(&structured.value)?
        };
        writeln!(std::io::stdout(), "{shown}")?;
    } else if a.stream {
        let opened = p.chat_stream_with(request, CallOptions::new()).await;
        print_stream(opened, a.json, &mut spinner).await?;
    } else {
        let reply = p.chat(request).await;
        spinner.stop();
        let reply = reply?;
        print_reply(a.json, &reply, &reply.text())?;
    }
    print_stats(&mut events)
}

pub(crate) async fn complete(a: CompleteArgs) -> Result<(), Failure> {
    let p = setup::provider(&a.common, false)?;
    let mut events = stats_receiver(&a.common, &p);
    let chat = setup::request(&a.common, Dialog::new())?;
    let mut request = CompletionRequest::new(&a.prompt).params(chat.params);
    request.model = chat.model;
    let mut spinner = Spinner::start();
    if a.stream {
        let opened = p.complete_stream(request).await;
        print_stream(opened, a.json, &mut spinner).await?;
    } else {
        let reply = p.complete(request).await;
        spinner.stop();
        let reply = reply?;
        print_reply(a.json, &reply, &reply.text)?;
    }
    print_stats(&mut events)
}

const REPL_HELP: &str =
    "commands: /stats, /reset, /system TEXT, /exit (or Ctrl-D); Ctrl-C stops a reply";

pub(crate) async fn repl(a: ReplArgs) -> Result<(), Failure> {
    let p = setup::provider(&a.common, true)?;
    let template = setup::request(&a.common, Dialog::new())?;
    let driver: Arc<dyn LlmDriver> = Arc::new(p.clone());
    let mut chat = Conversation::new(driver, a.budget).template(template);
    if let Some(s) = &a.system {
        chat.set_system(s.clone());
    }
    let interactive = std::io::stdin().is_terminal();
    let mut err = std::io::stderr();
    if interactive {
        writeln!(err, "nova repl ({}); {REPL_HELP}", p.get_ref().name())?;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        if interactive {
            write!(err, "> ")?;
            err.flush()?;
        }
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => {
                writeln!(err)?;
                return Ok(());
            }
        };
        let Some(line) = line else {
            return Ok(());
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line
            .split_once(' ')
            .map_or((line, ""), |(c, rest)| (c, rest.trim()))
        {
            ("/exit" | "/quit", _) => return Ok(()),
            ("/reset", _) => {
                chat.reset();
                writeln!(err, "(history cleared)")?;
            }
            ("/system", text) if !text.is_empty() => {
                chat.set_system(text);
                writeln!(err, "(system instruction set)")?;
            }
            ("/stats", _) => {
                let snap = p.metrics().map(|m| m.snapshot()).unwrap_or_default();
                let calls: u64 = snap.models.iter().map(|m| m.requests).sum();
                let errors: u64 = snap.models.iter().map(|m| m.errors).sum();
                let input: u64 = snap.models.iter().map(|m| m.input_tokens).sum();
                let output: u64 = snap.models.iter().map(|m| m.output_tokens).sum();
                writeln!(
                    std::io::stdout(),
                    "calls {calls}, errors {errors}, tokens {input} in / {output} out, cost ${:.6}; history {} rows, {} tokens",
                    snap.total_cost_usd(),
                    chat.history().len(),
                    chat.tokens()
                )?;
            }
            (cmd, _) if cmd.starts_with('/') => {
                writeln!(err, "unknown command {cmd}; {REPL_HELP}")?;
            }
            _ => {
                let result = if a.no_stream {
                    chat.send(line).await.map(|r| {
                        let _ = writeln!(std::io::stdout(), "{}", r.text());
                    })
                } else {
                    let mut out = std::io::stdout();
                    let send = chat.send_streaming(line, move |e| {
                        if let StreamEvent::TextDelta { text } = e {
                            let _ = write!(out, "{text}");
                            let _ = out.flush();
                        }
                    });
                    tokio::select! {
                        biased;
                        _ = tokio::signal::ctrl_c() => {
                            writeln!(err, "\n(stopped)")?;
                            Ok(())
                        }
                        r = send => r.map(|_| {
                            let _ = writeln!(std::io::stdout());
                        }),
                    }
                };
                if let Err(e) = result {
                    writeln!(err, "error: {e}")?;
                    if let Some(h) = setup::hint(&e, &a.common) {
                        writeln!(err, "hint: {h}")?;
                    }
                }
            }
        }
    }
}
