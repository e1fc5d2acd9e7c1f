//! What goes to the terminal besides the reply: the stats line and the spinner.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use nova_llm_provider::Completion;
use tokio::sync::oneshot;

/// One line of figures for a finished call.
pub(crate) fn stats_line(c: &Completion) -> String {
    let ttft = c
        .time_to_first_token
        .map(|t| format!(", first token {:.0} ms", t.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    let cost = match c.cost_usd {
        Some(usd) => format!("${usd:.6}"),
        None => "unknown (no price for this model)".into(),
    };
    let estimated = if c.usage.estimated {
        " (estimated)"
    } else {
        ""
    };
    let u = &c.usage;
    // The breakdowns the service reported (an unreported one is not shown as zero).
    let cache: Vec<String> = [
        u.cache_read_tokens.map(|n| format!("{n} cache read")),
        u.cache_write_tokens.map(|n| format!("{n} cache write")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let cache = if cache.is_empty() {
        String::new()
    } else {
        format!(" ({})", cache.join(", "))
    };
    let reasoning = u
        .reasoning_tokens
        .map(|n| format!(" ({n} reasoning)"))
        .unwrap_or_default();
    let model = if c.response_model.is_empty() {
        String::new()
    } else {
        format!(", model {}", c.response_model)
    };
    format!(
        "latency {:.0} ms{ttft}, tokens {} in{cache} / {} out{reasoning}{estimated}{model}, cost {cost}{}",
        c.latency.as_secs_f64() * 1000.0,
        u.input_tokens,
        u.output_tokens,
        if c.from_cache { ", from cache" } else { "" }
    )
}

/// A spinner on stderr while waiting for the first token, only when stderr is a terminal.
pub(crate) struct Spinner {
    stop: Option<oneshot::Sender<()>>,
}

impl Spinner {
    /// Starts spinning (if stderr is a terminal).
    pub(crate) fn start() -> Self {
        if !std::io::stderr().is_terminal() {
            return Spinner { stop: None };
        }
        let (tx, mut rx) = oneshot::channel();
        tokio::spawn(async move {
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0;
            loop {
                let mut err = std::io::stderr();
                let _ = write!(err, "\r{} waiting for the model", frames[i % frames.len()]);
                let _ = err.flush();
                i += 1;
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        });
        Spinner { stop: Some(tx) }
    }

    /// Stops and clears the spinner (no-op if stopped already).
    pub(crate) fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
            // Clear the line now rather than when the task next runs.
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}
