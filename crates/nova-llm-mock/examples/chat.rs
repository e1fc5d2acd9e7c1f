//! One chat turn on the built-in mock, no key and no network:
//! `cargo run -p nova-llm-mock --example chat -- hello` prints `f(hello)`.

// An example program: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use nova_llm_core::{ChatRequest, Dialog, LlmDriver, StreamEvent, next_event};
use nova_llm_mock::MockDriver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stream = args.first().is_some_and(|a| a == "--stream");
    let prompt = args
        .iter()
        .skip(usize::from(stream))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let prompt = if prompt.is_empty() {
        "hello".to_owned()
    } else {
        prompt
    };
    let driver = MockDriver::new();
    let request = ChatRequest::new(Dialog::new().user(prompt));

    let result = if stream {
        match driver.chat_stream(request).await {
            Ok(mut s) => {
                let mut out = Ok(());
                while let Some(item) = next_event(&mut s).await {
                    match item {
                        Ok(StreamEvent::TextDelta { text }) => print!("{text}"),
                        Ok(_) => {}
                        Err(e) => {
                            out = Err(e);
                            break;
                        }
                    }
                }
                println!();
                out
            }
            Err(e) => Err(e),
        }
    } else {
        driver.chat(request).await.map(|r| {
            println!("{}", r.text());
            eprintln!(
                "model {}, {} input + {} output tokens",
                r.model, r.usage.input_tokens, r.usage.output_tokens
            );
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
