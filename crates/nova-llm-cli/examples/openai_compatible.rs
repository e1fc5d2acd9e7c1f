//! The OpenAI driver against OpenAI or any compatible server (Ollama, vLLM, llama.cpp,
//! LiteLLM, LM Studio). Run against a local Ollama:
//! `cargo run -p nova-llm-cli --example openai_compatible -- http://localhost:11434/v1 llama3.2`
//! or against OpenAI: `OPENAI_API_KEY=sk-... cargo run -p nova-llm-cli --example
//! openai_compatible -- https://api.openai.com/v1 gpt-4o-mini`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use nova_llm_core::{ChatRequest, Dialog, LlmDriver};
use nova_llm_openai::OpenAiDriver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let base_url = args
        .next()
        .unwrap_or_else(|| "http://localhost:11434/v1".into());
    let model = args.next().unwrap_or_else(|| "llama3.2".into());
    let mut builder = OpenAiDriver::builder()
        .base_url(&base_url)
        .default_model(&model);
    if let Ok(key) = std::env::var("OPENAI_API_KEY") {
        builder = builder.api_key(key); // a local server needs none
    }
    let driver = match builder.build() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let request = ChatRequest::new(Dialog::new().user("Say hello in five words."));
    match driver.chat(request).await {
        Ok(reply) => {
            println!("{}", reply.text());
            println!(
                "({} tokens in, {} out)",
                reply.usage.input_tokens, reply.usage.output_tokens
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Every failure is classified: ask its kind, not its message.
            eprintln!("{} ({:?}, retryable: {})", e, e.kind(), e.is_retryable());
            ExitCode::FAILURE
        }
    }
}
