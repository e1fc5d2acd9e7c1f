//! Whole replies: text and usage, tool calls, structured output, reasoning.

use nova_llm_core::{FinishReason, LlmDriver};
use serde_json::json;

use super::{Kit, Verdict, expect, prepared, request, same_calls};
use crate::scenario::{Scenario, content};

pub(super) async fn run(kit: &Kit<'_>) {
    kit.check("text_and_usage", text_and_usage(kit)).await;
    kit.check("tool_calls", tool_calls(kit)).await;
    kit.check("structured", structured(kit)).await;
    kit.check("reasoning", reasoning(kit)).await;
}

async fn text_and_usage(kit: &Kit<'_>) -> Verdict {
    let text = "The shared contract holds.".to_owned();
    let usage = content::usage();
    let scenario = Scenario::Text {
        text: text.clone(),
        usage,
    };
    let p = prepared!(kit, &scenario);
    let reply = p.reply().await?;
    expect(reply.text() == text, || {
        format!("the text is {:?}, not {text:?}", reply.text())
    })?;
    let got = (reply.usage.input_tokens, reply.usage.output_tokens);
    expect(got == (usage.input_tokens, usage.output_tokens), || {
        format!("usage is {got:?} tokens in and out, not (11, 7)")
    })?;
    expect(reply.finish_reason == FinishReason::Stop, || {
        format!("the finish reason is {:?}, not a stop", reply.finish_reason)
    })
}

async fn tool_calls(kit: &Kit<'_>) -> Verdict {
    let calls = content::calls();
    let scenario = Scenario::ToolCalls {
        calls: calls.clone(),
        usage: content::usage(),
    };
    let p = prepared!(kit, &scenario);
    let reply = p.reply().await?;
    expect(same_calls(reply.tool_calls(), &calls), || {
        format!("the calls are {:?}, not {calls:?}", reply.tool_calls())
    })?;
    expect(reply.finish_reason == FinishReason::ToolCalls, || {
        format!(
            "the finish reason is {:?}, not tool calls",
            reply.finish_reason
        )
    })
}

async fn structured(kit: &Kit<'_>) -> Verdict {
    let value = json!({"name": "Ada", "year": 1843, "languages": ["en", "fr"]});
    let scenario = Scenario::Structured {
        value: value.clone(),
    };
    let p = prepared!(kit, &scenario);
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "year": {"type": "integer"},
            "languages": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["name", "year", "languages"],
        "additionalProperties": false
    });
    let got = p
        .driver
        .structured(request().json_schema("person", schema))
        .await
        .map_err(|e| format!("the structured call failed: {e}"))?;
    expect(got.value == value, || {
        format!("the value is {}, not {value}", got.value)
    })
}

async fn reasoning(kit: &Kit<'_>) -> Verdict {
    let (thought, text) = ("First the contract, then the code.", "Done.");
    let scenario = Scenario::Reasoning {
        reasoning: thought.into(),
        text: text.into(),
        usage: content::usage(),
    };
    let p = prepared!(kit, &scenario);
    let reply = p.reply().await?;
    expect(reply.reasoning().as_deref() == Some(thought), || {
        format!("the reasoning is {:?}, not {thought:?}", reply.reasoning())
    })?;
    expect(reply.text() == text, || {
        format!("the text is {:?}, not {text:?}", reply.text())
    })
}
