//! Streaming a reply and printing it as it arrives, on the mock (or on OpenAI with
//! `NOVA_DRIVER=openai` and `OPENAI_API_KEY`): `cargo run -p nova-llm-cli --example streaming`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use nova_llm_core::{ChatRequest, Dialog, LlmDriver, StreamAccumulator, StreamEvent, next_event};
use nova_llm_mock::{Chunking, MockDriver};
use nova_llm_openai::OpenAiDriver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let driver: Arc<dyn LlmDriver> = if std::env::var("NOVA_DRIVER").as_deref() == Ok("openai") {
        match OpenAiDriver::from_env() {
            Ok(d) => Arc::new(d),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Arc::new(MockDriver::builder().chunking(Chunking::Chars).build())
    };
    let request = ChatRequest::new(Dialog::new().user("Tell me a very short story."));
    let mut stream = match driver.chat_stream(request).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut acc = StreamAccumulator::new();
    let mut out = std::io::stdout();
    while let Some(item) = next_event(&mut stream).await {
        match item {
            Ok(event) => {
                if let StreamEvent::TextDelta { text } = &event {
                    let _ = write!(out, "{text}");
                    let _ = out.flush();
                }
                acc.push(&event);
            }
            Err(e) => {
                // A cut stream keeps what arrived.
                eprintln!("\n{e}; received so far: {:?}", e.partial().map(|p| &p.text));
                return ExitCode::FAILURE;
            }
        }
    }
    match acc.finish() {
        Ok(reply) => {
            println!("\n({} output tokens)", reply.usage.output_tokens);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\n{e}");
            ExitCode::FAILURE
        }
    }
}
