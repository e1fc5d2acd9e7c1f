//! Shared helpers of the cross-crate tests and benchmarks: an OpenAI-compatible test
//! server on loopback with per-request fault injection.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nova_llm_core::{LlmDriver, ChatRequest, Dialog};
//! use nova_llm_openai::OpenAiDriver;
//! use nova_llm_tests::server::TestServer;
//!
//! let server = TestServer::start().await?;
//! let driver = OpenAiDriver::builder().base_url(server.base_url()).build()?;
//! let reply = driver.chat(ChatRequest::new(Dialog::new().user("hi"))).await?;
//! assert_eq!(reply.text(), "tok tok tok ");
//! # Ok(())
//! # }
//! ```

pub mod server;
