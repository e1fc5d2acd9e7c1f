//! The middleware chain: order, short-circuit, request/response/stream transformation,
//! error handling, the per-call context, and the provider as a driver.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, CompletionRequest, CompletionResponse, ErrorKind,
    LlmDriver, LlmError, Message, StreamEvent, Usage, async_trait, collect_stream,
};
use nova_llm_mock::MockDriver;

use super::{req, run};
use crate::{CallContext, CallOptions, Middleware, Next, Operation, Provider};

type Log = Arc<Mutex<Vec<String>>>;

/// Logs `name>` on the way in and `<name` on the way out.
#[derive(Debug)]
struct Trace(&'static str, Log);

#[async_trait]
impl Middleware for Trace {
    fn name(&self) -> &str {
        self.0
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.1.lock().unwrap().push(format!("{}>", self.0));
        let r = next.chat(request, cx).await;
        self.1.lock().unwrap().push(format!("<{}", self.0));
        r
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        self.1.lock().unwrap().push(format!("{}>>", self.0));
        next.chat_stream(request, cx).await
    }
}

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn layers_run_outermost_first_and_can_be_placed_and_removed() {
    run(async {
        let l = log();
        let p = Provider::builder(MockDriver::new())
            .layer(Trace("a", l.clone()))
            .layer(Trace("c", l.clone()))
            .insert_before("c", Trace("b", l.clone()))
            .insert_after("events", Trace("first", l.clone()))
            .build();
        assert_eq!(p.layers(), ["events", "first", "a", "b", "c"]);
        p.prompt("x").await.unwrap();
        assert_eq!(
            taken(&l),
            ["first>", "a>", "b>", "c>", "<c", "<b", "<a", "<first"]
        );
        let s = p.chat_stream(req("x")).await.unwrap();
        collect_stream(s).await.unwrap();
        assert_eq!(taken(&l), ["first>>", "a>>", "b>>", "c>>"]);

        let p = Provider::builder(MockDriver::new())
            .layer(Trace("a", l.clone()))
            .layer(Trace("b", l.clone()))
            .without("a")
            .without("events")
            .build();
        assert_eq!(p.layers(), ["b"]);
        assert!(p.metrics().is_some());
        // An unknown anchor puts the layer innermost.
        let b = Provider::builder(MockDriver::new()).insert_before("nope", Trace("z", l));
        assert_eq!(b.layer_names(), ["events", "z"]);
    });
}

/// Answers from a fixed text without calling the rest of the chain.
#[derive(Debug)]
struct Canned;

#[async_trait]
impl Middleware for Canned {
    fn name(&self) -> &str {
        "canned"
    }

    async fn chat(
        &self,
        _: ChatRequest,
        _: &mut CallContext,
        _: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        Ok(ChatResponse::from_text("canned").with_usage(Usage::new(1, 1)))
    }

    async fn chat_stream(
        &self,
        _: ChatRequest,
        _: &mut CallContext,
        _: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        Ok(nova_llm_core::stream_from_events(
            ChatResponse::from_text("canned").to_events(),
        ))
    }
}

#[test]
fn a_middleware_can_answer_without_calling_the_driver() {
    run(async {
        let mock = MockDriver::new();
        let l = log();
        let p = Provider::builder(mock.clone())
            .layer(Canned)
            .layer(Trace("inner", l.clone()))
            .build();
        assert_eq!(p.prompt("x").await.unwrap(), "canned");
        let s = p.chat_stream(req("x")).await.unwrap();
        assert_eq!(collect_stream(s).await.unwrap().text(), "canned");
        assert_eq!(mock.calls(), 0);
        assert!(taken(&l).is_empty(), "layers below never ran");
    });
}

/// Adds a system row and lowers the temperature; tags the reply.
#[derive(Debug)]
struct Rewrite;

#[async_trait]
impl Middleware for Rewrite {
    fn name(&self) -> &str {
        "rewrite"
    }

    async fn chat(
        &self,
        mut request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        request
            .dialog
            .messages_mut()
            .insert(0, Message::system("be brief"));
        request.params.temperature = Some(0.0);
        let mut reply = next.chat(request, cx).await?;
        reply.message = Message::assistant(format!("[{}]", reply.text()));
        Ok(reply)
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        let inner = next.chat_stream(request, cx).await?;
        Ok(Box::pin(inner.map(|item| {
            item.map(|ev| match ev {
                StreamEvent::TextDelta { text } => StreamEvent::text(text.to_uppercase()),
                other => other,
            })
        })))
    }
}

#[test]
fn a_middleware_can_change_the_request_the_reply_and_each_stream_event() {
    run(async {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone()).layer(Rewrite).build();
        assert_eq!(p.prompt("hi").await.unwrap(), "[f(hi)]");
        let sent = mock.last_chat_request().unwrap();
        assert_eq!(sent.dialog.len(), 2);
        assert_eq!(sent.dialog.messages()[0].text(), "be brief");
        assert_eq!(sent.params.temperature, Some(0.0));

        let s = p.chat_stream(req("hi")).await.unwrap();
        assert_eq!(collect_stream(s).await.unwrap().text(), "F(HI)");
    });
}

/// Retries once on a retryable error, replaces a content-filter error by a polite reply.
#[derive(Debug)]
struct Handle;

#[async_trait]
impl Middleware for Handle {
    fn name(&self) -> &str {
        "handle"
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        match next.chat(request.clone(), cx).await {
            Err(e) if e.is_retryable() => {
                cx.set_attempt(cx.attempt() + 1);
                next.chat(request, cx).await
            }
            Err(e) if e.kind() == ErrorKind::ContentFiltered => {
                Ok(ChatResponse::from_text("I cannot help with that."))
            }
            other => other,
        }
    }
}

/// Records the attempt number the driver side sees.
#[derive(Debug)]
struct SeeAttempt(Arc<Mutex<Vec<u32>>>);

#[async_trait]
impl Middleware for SeeAttempt {
    fn name(&self) -> &str {
        "see"
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.0.lock().unwrap().push(cx.attempt());
        next.chat(request, cx).await
    }
}

#[test]
fn a_middleware_can_handle_errors_and_call_the_rest_of_the_chain_again() {
    run(async {
        let mock = MockDriver::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let p = Provider::builder(mock.clone())
            .layer(Handle)
            .layer(SeeAttempt(seen.clone()))
            .build();
        mock.push_error(LlmError::new(ErrorKind::Overloaded, "busy"));
        assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
        assert_eq!(*seen.lock().unwrap(), [1, 2]);
        assert_eq!(mock.calls(), 2);

        mock.push_error(LlmError::new(ErrorKind::ContentFiltered, "no"));
        assert_eq!(p.prompt("q").await.unwrap(), "I cannot help with that.");

        mock.push_error(LlmError::new(ErrorKind::Authentication, "bad key"));
        let err = p.prompt("q").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(err.message(), "bad key");
    });
}

#[derive(Debug, PartialEq)]
struct Tenant(&'static str);

/// Copies what the context says into a shared record.
#[derive(Debug)]
struct Inspect(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Middleware for Inspect {
    fn name(&self) -> &str {
        "inspect"
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let tenant = cx.extensions().get::<Tenant>().map(|t| t.0).unwrap_or("-");
        self.0.lock().unwrap().push(format!(
            "{:?} {} {} tag={} tenant={}",
            cx.operation(),
            cx.model(),
            cx.driver(),
            cx.tags().get("team").map(String::as_str).unwrap_or("-"),
            tenant
        ));
        cx.extensions_mut().insert(7_u32);
        assert_eq!(
            cx.extensions().get::<u32>(),
            Some(&7),
            "kept for the layers inside"
        );
        assert!(cx.request_id().get() > 0);
        next.chat(request, cx).await
    }
}

#[test]
fn the_context_carries_operation_model_tags_and_extensions() {
    run(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let p = Provider::builder(MockDriver::new())
            .layer(Inspect(seen.clone()))
            .build();
        p.chat_with(
            req("q").model("gpt-4o"),
            CallOptions::new()
                .tag("team", "search")
                .extension(Tenant("acme")),
        )
        .await
        .unwrap();
        p.complete(CompletionRequest::new("q")).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "Chat gpt-4o mock tag=search tenant=acme",
                "Completion default mock tag=- tenant=-",
            ]
        );
    });
}

/// A driver with a native completion endpoint, counting which method was used.
#[derive(Debug, Default)]
struct Native {
    chats: Mutex<u32>,
    completes: Mutex<u32>,
}

#[async_trait]
impl LlmDriver for Native {
    fn name(&self) -> &str {
        "native"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        *self.chats.lock().unwrap() += 1;
        Ok(ChatResponse::from_text(format!(
            "chat:{}",
            request.dialog.len()
        )))
    }

    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        *self.completes.lock().unwrap() += 1;
        Ok(
            CompletionResponse::new(format!("native:{}", request.prompt))
                .with_usage(Usage::new(1, 1)),
        )
    }
}

/// Adds a system row (a real dialog is no longer a plain completion).
#[derive(Debug)]
struct AddSystem;

#[async_trait]
impl Middleware for AddSystem {
    fn name(&self) -> &str {
        "system"
    }

    async fn chat(
        &self,
        mut request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        request
            .dialog
            .messages_mut()
            .insert(0, Message::system("s"));
        next.chat(request, cx).await
    }
}

#[test]
fn completions_reach_the_drivers_own_completion_method_unless_a_layer_made_a_dialog() {
    run(async {
        let driver = Arc::new(Native::default());
        let p = Provider::builder_shared(driver.clone()).build();
        let r = p
            .complete(CompletionRequest::new("once upon"))
            .await
            .unwrap();
        assert_eq!(r.text, "native:once upon");
        assert_eq!(r.usage, Usage::new(1, 1));
        assert_eq!(*driver.completes.lock().unwrap(), 1);
        assert_eq!(p.prompt("x").await.unwrap(), "chat:1");
        assert_eq!(*driver.chats.lock().unwrap(), 1);

        let p = Provider::builder_shared(driver.clone())
            .layer(AddSystem)
            .build();
        let r = p
            .complete(CompletionRequest::new("once upon"))
            .await
            .unwrap();
        assert_eq!(r.text, "chat:2");
        assert_eq!(*driver.completes.lock().unwrap(), 1);
    });
}

/// A change to a request.
type Edit = fn(&mut ChatRequest);

/// Changes the request of every call on its way to the driver, and nothing else.
struct Rewriting(Edit);

impl std::fmt::Debug for Rewriting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewriting")
    }
}

#[async_trait]
impl Middleware for Rewriting {
    fn name(&self) -> &str {
        "rewriting"
    }

    async fn chat(
        &self,
        mut request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        (self.0)(&mut request);
        next.chat(request, cx).await
    }
}

#[test]
fn a_completion_stays_one_only_while_it_is_one_plain_user_row() {
    run(async {
        let rewrites: [(&str, Edit); 6] = [
            ("a second row", |r| r.dialog.push(Message::user("more"))),
            ("a system row", |r| {
                r.dialog.messages_mut()[0].role = nova_llm_core::Role::System;
            }),
            ("a name", |r| {
                r.dialog.messages_mut()[0].name = Some("bob".into())
            }),
            ("an image", |r| {
                r.dialog.messages_mut()[0]
                    .content
                    .push(nova_llm_core::ContentPart::image_url("u"));
            }),
            ("a tool", |r| {
                r.tools.push(nova_llm_core::Tool::new(
                    "f",
                    serde_json::json!({"type": "object"}),
                ));
            }),
            ("a JSON reply", |r| {
                r.response_format = nova_llm_core::ResponseFormat::JsonObject;
            }),
        ];
        for (what, rewrite) in rewrites {
            let driver = Arc::new(Native::default());
            let p = Provider::builder_shared(driver.clone())
                .layer(Rewriting(rewrite))
                .build();
            p.complete(CompletionRequest::new("once upon"))
                .await
                .unwrap();
            assert_eq!(
                (
                    *driver.chats.lock().unwrap(),
                    *driver.completes.lock().unwrap()
                ),
                (1, 0),
                "{what}: a chat now"
            );
        }
        // Parameters and extras are no reason: still a completion, and they go with it.
        let driver = Arc::new(Native::default());
        let p = Provider::builder_shared(driver.clone())
            .layer(Rewriting(|r| r.params.max_tokens = Some(7)))
            .build();
        p.complete(CompletionRequest::new("once upon"))
            .await
            .unwrap();
        assert_eq!(*driver.completes.lock().unwrap(), 1);
    });
}

/// Overrides nothing.
#[derive(Debug)]
struct Bare;

impl Middleware for Bare {
    fn name(&self) -> &str {
        "bare"
    }
}

#[test]
fn a_middleware_that_overrides_nothing_passes_every_call_through() {
    run(async {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone()).layer(Bare).build();
        assert_eq!(p.prompt("x").await.unwrap(), "f(x)");
        let s = p.chat_stream(req("y")).await.unwrap();
        assert_eq!(collect_stream(s).await.unwrap().text(), "f(y)");
        // Streamed completions reach the driver's own streamed completion, and streamed
        // chats its streamed chat.
        let s = p
            .complete_stream(CompletionRequest::new("z"))
            .await
            .unwrap();
        collect_stream(s).await.unwrap();
        let kinds: Vec<_> = mock
            .requests()
            .iter()
            .map(|r| (r.is_stream(), r.completion_request().is_some()))
            .collect();
        assert_eq!(kinds, [(false, false), (true, false), (true, true)]);
    });
}

#[test]
fn the_provider_is_a_driver_and_providers_nest() {
    run(async {
        let mock = MockDriver::new();
        let l = log();
        let inner = Provider::builder(mock.clone())
            .layer(Trace("inner", l.clone()))
            .build();
        let outer: Arc<dyn LlmDriver> = Arc::new(
            Provider::builder(inner.clone())
                .name("outer")
                .layer(Trace("outer", l.clone()))
                .build(),
        );
        assert_eq!(outer.name(), "outer");
        assert_eq!(inner.name(), "mock");
        assert_eq!(outer.prompt("x").await.unwrap(), "f(x)");
        assert_eq!(taken(&l), ["outer>", "inner>", "<inner", "<outer"]);

        // Every provided method goes through the chain.
        let schema = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let s = outer
            .structured(req("x").json_schema("t", schema))
            .await
            .unwrap();
        assert_eq!(s.value["a"], "f(x).a");
        let s = outer
            .complete_stream(CompletionRequest::new("y"))
            .await
            .unwrap();
        assert_eq!(collect_stream(s).await.unwrap().text(), "f(y)");
        assert_eq!(
            taken(&l),
            ["outer>", "inner>", "<inner", "<outer", "outer>>", "inner>>"]
        );
        assert_eq!(inner.get_ref().name(), "mock");
        assert_eq!(mock.calls(), 3);
        assert_eq!(Operation::CompletionStream.gen_ai_name(), "text_completion");

        // Through any depth, a provider says what its driver can do.
        let mut limited = nova_llm_core::Capabilities::all();
        limited.tools = false;
        let mock = MockDriver::builder().capabilities(limited).build();
        let nested = Provider::new(Provider::new(mock));
        assert_eq!(nested.capabilities(), limited);
    });
}
