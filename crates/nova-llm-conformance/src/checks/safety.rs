//! What a driver must not do: send a request any service would reject, read an oversize
//! body whole, or keep an exchange going after its caller let go of it.

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, Tool, ToolChoice, next_event};
use serde_json::json;

use super::{Kit, SEEN_LIMIT, Verdict, expect, request, skipped};
use crate::report::Outcome;
use crate::scenario::{Scenario, content};

pub(super) async fn run(kit: &Kit<'_>) {
    kit.check("refused_before_sending", refused_before_sending(kit))
        .await;
    kit.check("oversize_body", oversize_body(kit)).await;
    kit.check("dropped_call", dropped_call(kit)).await;
    kit.check("dropped_stream", dropped_stream(kit)).await;
}

async fn refused_before_sending(kit: &Kit<'_>) -> Verdict {
    let invalid = [
        ("an empty dialog", ChatRequest::new(Dialog::new())),
        ("a temperature of 3", request().temperature(3.0)),
        (
            "a forced tool that is not offered",
            request()
                .tool(Tool::new("lookup", json!({"type": "object"})))
                .tool_choice(ToolChoice::Tool("missing".into())),
        ),
    ];
    let before = kit.server.requests().len();
    let driver = kit.harness.driver(&kit.setup());
    for (what, req) in invalid {
        match driver.chat(req.clone()).await {
            Ok(_) => return Err(format!("{what} was answered")),
            Err(e) if e.kind() != ErrorKind::InvalidRequest => {
                return Err(format!("{what}: {:?}, not InvalidRequest ({e})", e.kind()));
            }
            Err(_) => {}
        }
        match driver.chat_stream(req).await {
            Ok(_) => return Err(format!("{what} opened a stream")),
            Err(e) if e.kind() != ErrorKind::InvalidRequest => {
                return Err(format!(
                    "{what} streamed: {:?}, not InvalidRequest",
                    e.kind()
                ));
            }
            Err(_) => {}
        }
    }
    let sent = kit.server.requests().len() - before;
    expect(sent == 0, || {
        format!("{sent} invalid requests reached the service")
    })
}

async fn oversize_body(kit: &Kit<'_>) -> Verdict {
    let bytes = 32 << 20;
    let p = match kit.prepare(&Scenario::Oversize { bytes }) {
        Ok(p) => p,
        Err(why) => return skipped(why),
    };
    match p.driver.chat(request()).await {
        Ok(_) => return Err("a body over the limit was accepted".into()),
        Err(e) if e.kind() != ErrorKind::Decode => {
            return Err(format!("{:?}, not a decode error ({e})", e.kind()));
        }
        Err(_) => {}
    }
    if !p.wire {
        return Ok(Outcome::Passed);
    }
    // The driver stopped reading: the double could not write the whole body (the
    // connection's buffers hold a few MiB at most).
    let stopped = kit
        .server
        .until(SEEN_LIMIT, |s| s.written() < bytes && s.hung_up() > 0)
        .await;
    expect(stopped, || {
        format!(
            "the double wrote {} of {bytes} bytes: the driver read on past its limit",
            kit.server.written()
        )
    })
}

/// A plain call dropped while its reply is on its way: the driver lets go of the
/// connection.
async fn dropped_call(kit: &Kit<'_>) -> Verdict {
    let scenario = Scenario::Text {
        text: "never read".into(),
        usage: content::usage(),
    };
    let p = match kit.prepare(&scenario) {
        Ok(p) if p.wire => p,
        Ok(_) => return skipped("no HTTP exchange to let go of".into()),
        Err(why) => return skipped(why),
    };
    // The reply's head goes out, then nothing until the client hangs up.
    kit.server.stall_next();
    let before = (kit.server.requests().len(), kit.server.hung_up());
    let driver = p.driver;
    let call = tokio::spawn(async move { driver.chat(request()).await });
    let arrived = kit
        .server
        .until(SEEN_LIMIT, |s| s.requests().len() > before.0)
        .await;
    call.abort();
    expect(arrived, || "the request never reached the double".into())?;
    let hung_up = kit
        .server
        .until(SEEN_LIMIT, |s| s.hung_up() > before.1)
        .await;
    expect(hung_up, || {
        "the connection stayed open after the call was dropped".into()
    })
}

/// A stream dropped half way: the driver lets go of the connection.
async fn dropped_stream(kit: &Kit<'_>) -> Verdict {
    let scenario = Scenario::StreamStall {
        deltas: content::deltas(),
        after: 2,
    };
    let p = match kit.prepare(&scenario) {
        Ok(p) if p.wire => p,
        Ok(_) => return skipped("no HTTP exchange to let go of".into()),
        Err(why) => return skipped(why),
    };
    let before = kit.server.hung_up();
    let mut stream = p.stream().await?;
    match next_event(&mut stream).await {
        Some(Ok(_)) => {}
        other => return Err(format!("the stream gave {other:?} first")),
    }
    drop(stream);
    let hung_up = kit.server.until(SEEN_LIMIT, |s| s.hung_up() > before).await;
    expect(hung_up, || {
        "the connection stayed open after the stream was dropped".into()
    })
}
