//! Errors: each class classified alike for plain and streamed calls (kind, status,
//! retryability, `Retry-After`), and the key never shown, even when the service echoes it.

use std::error::Error as _;

use nova_llm_core::{LlmDriver, LlmError};

use super::{KEY, Kit, Verdict, expect, prepared, request};
use crate::scenario::{ErrorClass, RETRY_AFTER, Scenario};

pub(super) async fn run(kit: &Kit<'_>) {
    for class in ErrorClass::ALL {
        let name = format!("error/{}", snake(class));
        kit.check(&name, error_class(kit, class)).await;
    }
    kit.check("key_never_shown", key_never_shown(kit)).await;
}

fn snake(class: ErrorClass) -> String {
    let name = format!("{class:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What the driver must make of an error of `class`.
fn classified(err: &LlmError, class: ErrorClass, wire: bool) -> Result<(), String> {
    if err.kind() != class.kind() {
        return Err(format!(
            "classified as {:?}, not {:?} ({err})",
            err.kind(),
            class.kind()
        ));
    }
    if wire && err.status().is_none() {
        return Err(format!("no HTTP status kept ({err})"));
    }
    if err.is_retryable() != class.retryable() {
        return Err(format!(
            "retryable: {}, not {} ({err})",
            err.is_retryable(),
            class.retryable()
        ));
    }
    if class == ErrorClass::RateLimited && err.retry_after() != Some(RETRY_AFTER) {
        return Err(format!(
            "retry after {:?}, not the {RETRY_AFTER:?} the service said",
            err.retry_after()
        ));
    }
    Ok(())
}

/// The class before any output, for a plain call and for a streamed one (which fails the
/// `chat_stream` call itself, as the stream contract says).
async fn error_class(kit: &Kit<'_>, class: ErrorClass) -> Verdict {
    let scenario = Scenario::Error {
        class,
        message: format!("conformance: {class:?}"),
    };
    let p = prepared!(kit, &scenario);
    let err = match p.driver.chat(request()).await {
        Ok(r) => return Err(format!("a plain call succeeded with {:?}", r.text())),
        Err(e) => e,
    };
    classified(&err, class, p.wire).map_err(|why| format!("plain: {why}"))?;
    let p = kit
        .prepare(&scenario)
        .map_err(|why| format!("arranged once, then not: {why}"))?;
    let err = match p.driver.chat_stream(request()).await {
        Ok(_) => return Err("a streamed call opened a stream instead of failing".into()),
        Err(e) => e,
    };
    classified(&err, class, p.wire).map_err(|why| format!("streamed: {why}"))?;
    Ok(crate::report::Outcome::Passed)
}

/// Everything an error shows: `Display`, `Debug`, and each source's `Display`.
fn shown(err: &LlmError) -> Vec<String> {
    let mut shown = vec![err.to_string(), format!("{err:?}")];
    let mut source = err.source();
    while let Some(s) = source {
        shown.push(s.to_string());
        source = s.source();
    }
    shown
}

async fn key_never_shown(kit: &Kit<'_>) -> Verdict {
    let scenario = Scenario::Error {
        class: ErrorClass::Authentication,
        message: format!("Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"),
    };
    let p = prepared!(kit, &scenario);
    let debug = format!("{:?}", p.driver);
    expect(!debug.contains(KEY), || {
        format!("the driver's Debug shows the key: {debug}")
    })?;
    let plain = match p.driver.chat(request()).await {
        Ok(_) => return Err("the call succeeded".into()),
        Err(e) => e,
    };
    let p = kit
        .prepare(&scenario)
        .map_err(|why| format!("arranged once, then not: {why}"))?;
    let streamed = match p.driver.chat_stream(request()).await {
        Ok(_) => return Err("the stream call succeeded".into()),
        Err(e) => e,
    };
    for err in [plain, streamed] {
        for text in shown(&err) {
            if text.contains(KEY) {
                return Err(format!("the key shows in an error: {text}"));
            }
        }
    }
    Ok(crate::report::Outcome::Passed)
}
