//! The cache: keys (golden values, a property test over every field), hits and misses,
//! TTL and capacity, per-request controls, stream store and replay, and single-flight.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, CompletionRequest, ContentPart, Dialog, ErrorKind,
    FinishReason, LlmDriver, LlmError, Message, ResponseFormat, Tool, ToolCall, ToolChoice, Usage,
    collect_stream, next_event,
};
use nova_llm_mock::{MockDriver, Reply, ScriptedStream};
use serde_json::json;

use super::req;
use crate::cache::{CacheControl, CacheKey, CacheLayer, CacheStore, CachedReply, MemoryStore};
use crate::{CallOptions, Event, EventKind, Operation, Provider};

fn key(r: &ChatRequest) -> CacheKey {
    CacheKey::new("openai", Operation::Chat, r)
}

fn full_request() -> ChatRequest {
    let mut schema_format = ResponseFormat::json_schema(
        "answer",
        json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}}),
    );
    if let ResponseFormat::JsonSchema(s) = &mut schema_format {
        s.strict = true;
    }
    let mut r = ChatRequest::new(
        Dialog::new()
            .system("You are terse.")
            .user("What is the weather?")
            .message(Message::assistant("").with_tool_call(ToolCall::new(
                "call_1",
                "weather",
                r#"{"city":"Paris"}"#,
            )))
            .tool_result("call_1", "18C, cloudy"),
    )
    .model("gpt-4o-mini")
    .temperature(0.2)
    .max_tokens(100)
    .tool(Tool::new(
        "weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    ))
    .response_format(schema_format);
    r.params.top_p = Some(0.9);
    r.params.stop = vec!["END".into()];
    r.params.seed = Some(7);
    r.params.presence_penalty = Some(0.1);
    r.params.frequency_penalty = Some(0.2);
    r.params.user = Some("u1".into());
    r.tool_choice = Some(ToolChoice::Auto);
    r.parallel_tool_calls = Some(false);
    r.extras.insert("logprobs".into(), json!(true));
    r
}

#[test]
fn keys_are_pinned_across_releases_and_processes() {
    // If one of these changes, every stored entry of every user is lost: bump KEY_VERSION
    // instead of editing the expected values.
    assert_eq!(
        key(&req("hello")).as_str(),
        "v1:4ccdfd67ec493a071a34102575c226d2e4fe6b79b94b4de62a7021a4dd3e30c8"
    );
    assert_eq!(
        key(&full_request()).as_str(),
        "v1:9c7a40c85285c32138d836b764a4743d5995fbaf775b57b63e0435e524e6d146"
    );
    // Displayed as the same text (for logs and for stores of one's own).
    assert_eq!(key(&req("hello")).to_string(), key(&req("hello")).as_str());
}

/// Requests that take the key's shortcuts (known roles, empty fields, default parameters
/// and formats written without serde) next to the ones that do not, pinned like the two
/// above: the shortcuts write the bytes serde would.
#[test]
fn keys_of_every_shortcut_and_its_fallback_are_pinned() {
    let cases: Vec<(ChatRequest, &str)> = vec![
        (
            ChatRequest::new(
                Dialog::new()
                    .message(Message::new(
                        nova_llm_core::Role::Other("developer".into()),
                        "be brief",
                    ))
                    .message(Message::user("hi").with_name("ann")),
            ),
            "v1:22dae06b1897ae5ad89c11429ff3be699f5637a8a0ed073348a91148aaec53e7",
        ),
        (
            ChatRequest::new(Dialog::new().user("hi")).response_format(ResponseFormat::JsonObject),
            "v1:874d9d1a5143dcf17d6e4beaf18ec85f7363767e73fc0d8479d10bc7376f94ff",
        ),
        (
            {
                let mut r = ChatRequest::new(Dialog::new().user("hi"));
                r.tool_choice = Some(ToolChoice::Required);
                r.parallel_tool_calls = Some(true);
                r
            },
            "v1:6fc954cb3ed4ac6dae871cb49005c7f8498eff385a4ce65775eef5a7b6a7c683",
        ),
        (
            ChatRequest::new(Dialog::new().user("hi")).temperature(0.0),
            "v1:76965b89aab1f25f54320f8fce3b54a0625a6d8a651ef72bd0a6a87811e3d2cf",
        ),
    ];
    for (i, (r, want)) in cases.iter().enumerate() {
        assert_eq!(key(r).as_str(), *want, "case {i}");
    }
}

/// Found by the `cache_key` fuzz target: a non-finite parameter (then a temperature of 1e117
/// parsed into an `f32`; now only a value built in code, as JSON has no infinity) serializes
/// as `null`, so a JSON round trip gives back a different request (no temperature) and
/// rightly another key. Such a request is refused before anything is sent, so nothing is
/// ever stored under either key. (The target checks the key after a round trip only when
/// the round trip gives back an equal request.)
#[tokio::test]
async fn a_request_with_a_non_finite_parameter_is_keyed_refused_and_never_stored() {
    let mut request = req("hi");
    request.params.temperature = Some(f64::INFINITY);
    assert_eq!(key(&request), key(&request.clone()));
    let back: ChatRequest = serde_json::from_slice(&serde_json::to_vec(&request).unwrap()).unwrap();
    assert_ne!(
        back, request,
        "the round trip drops the infinite temperature"
    );

    let mock = MockDriver::new();
    let (p, mut rx) = cached(&mock);
    for _ in 0..2 {
        let err = p.chat(request.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(err.message().contains("temperature"), "{err}");
    }
    // Looked up twice, never stored, so never a hit.
    assert_eq!(cache_events(&rx.drain()), ["miss", "miss"]);
}

#[test]
fn keys_ignore_what_is_not_sent_and_the_order_of_json_fields() {
    let base = full_request();
    let mut hidden = base.clone();
    hidden
        .dialog
        .messages_mut()
        .insert(1, Message::user("a private note").with_hidden(true));
    hidden.dialog.messages_mut()[0]
        .metadata
        .insert("ui".into(), json!("x"));
    assert_eq!(key(&base), key(&hidden));
    // A prompt-caching breakpoint asks the service to cache; it never changes the answer.
    let mut marked = base.clone();
    let row = std::mem::replace(&mut marked.dialog.messages_mut()[0], Message::user(""));
    marked.dialog.messages_mut()[0] = row.with_cache_breakpoint(nova_llm_core::CacheTtl::Long);
    marked.tools[0] = marked.tools[0]
        .clone()
        .with_cache_breakpoint(nova_llm_core::CacheTtl::Short);
    assert_eq!(key(&base), key(&marked));

    let a: serde_json::Value =
        serde_json::from_str(r#"{"x": 1, "y": {"p": [1, 2], "q": null}}"#).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(r#"{"y": {"q": null, "p": [1, 2]}, "x": 1}"#).unwrap();
    let with = |v: &serde_json::Value| {
        let mut r = req("q");
        r.extras.insert("opts".into(), v.clone());
        r.tools.push(Tool::new("t", v.clone()));
        key(&r)
    };
    assert_eq!(with(&a), with(&b));
    // Streaming or not, the same key (a stored stream answers a plain call).
    assert_eq!(
        CacheKey::new("d", Operation::Chat, &base),
        CacheKey::new("d", Operation::ChatStream, &base)
    );
}

type Change = Box<dyn Fn(&mut ChatRequest)>;

/// Every way to change what the model is asked: each must change the key.
fn mutations() -> Vec<(&'static str, Change)> {
    vec![
        ("model", Box::new(|r| r.model = Some("gpt-4o".into()))),
        ("no model", Box::new(|r| r.model = None)),
        (
            "text",
            Box::new(|r| r.dialog.messages_mut()[1] = Message::user("What is the weather!")),
        ),
        (
            "role",
            Box::new(|r| r.dialog.messages_mut()[0].role = nova_llm_core::Role::User),
        ),
        (
            "extra row",
            Box::new(|r| r.dialog.push(Message::user("more"))),
        ),
        (
            "image",
            Box::new(|r| {
                r.dialog.messages_mut()[1]
                    .content
                    .push(ContentPart::image_url("https://x/y.png"));
            }),
        ),
        (
            "name",
            Box::new(|r| r.dialog.messages_mut()[1].name = Some("ann".into())),
        ),
        (
            "tool call args",
            Box::new(|r| {
                r.dialog.messages_mut()[2].tool_calls[0].arguments = r#"{"city":"Rome"}"#.into();
            }),
        ),
        (
            "tool result id",
            Box::new(|r| r.dialog.messages_mut()[3].tool_call_id = Some("call_2".into())),
        ),
        (
            "tool failed",
            Box::new(|r| r.dialog.messages_mut()[3].is_error = true),
        ),
        (
            "document",
            Box::new(|r| {
                r.dialog.messages_mut()[1]
                    .content
                    .push(ContentPart::pdf_base64("JVBERi0x"));
            }),
        ),
        (
            "reasoning part",
            Box::new(|r| {
                let row = std::mem::replace(&mut r.dialog.messages_mut()[2], Message::user(""));
                r.dialog.messages_mut()[2] =
                    row.with_reasoning(nova_llm_core::ReasoningPart::new("hm"));
            }),
        ),
        (
            "reasoning control",
            Box::new(|r| r.reasoning = Some(nova_llm_core::Reasoning::Budget(2048))),
        ),
        (
            "another reasoning control",
            Box::new(|r| r.reasoning = Some(nova_llm_core::Reasoning::Off)),
        ),
        (
            "temperature",
            Box::new(|r| r.params.temperature = Some(0.3)),
        ),
        ("top_p", Box::new(|r| r.params.top_p = None)),
        ("max tokens", Box::new(|r| r.params.max_tokens = Some(101))),
        ("stop", Box::new(|r| r.params.stop.push("STOP".into()))),
        ("seed", Box::new(|r| r.params.seed = Some(8))),
        (
            "presence",
            Box::new(|r| r.params.presence_penalty = Some(0.0)),
        ),
        ("frequency", Box::new(|r| r.params.frequency_penalty = None)),
        ("user", Box::new(|r| r.params.user = Some("u2".into()))),
        (
            "text format",
            Box::new(|r| r.response_format = ResponseFormat::Text),
        ),
        (
            "json object",
            Box::new(|r| r.response_format = ResponseFormat::JsonObject),
        ),
        (
            "schema",
            Box::new(|r| {
                if let ResponseFormat::JsonSchema(s) = &mut r.response_format {
                    s.schema["properties"]["c"] = json!({"type": "boolean"});
                }
            }),
        ),
        (
            "strict",
            Box::new(|r| {
                if let ResponseFormat::JsonSchema(s) = &mut r.response_format {
                    s.strict = false;
                }
            }),
        ),
        (
            "tool params",
            Box::new(|r| r.tools[0].parameters["required"] = json!(["city"])),
        ),
        (
            "tool description",
            Box::new(|r| r.tools[0].description = Some("weather now".into())),
        ),
        (
            "second tool",
            Box::new(|r| r.tools.push(Tool::new("time", json!({})))),
        ),
        (
            "tool choice",
            Box::new(|r| r.tool_choice = Some(ToolChoice::Required)),
        ),
        (
            "forced tool",
            Box::new(|r| r.tool_choice = Some(ToolChoice::Tool("weather".into()))),
        ),
        ("parallel", Box::new(|r| r.parallel_tool_calls = Some(true))),
        (
            "extras",
            Box::new(|r| {
                r.extras.insert("logprobs".into(), json!(false));
            }),
        ),
        (
            "new extra",
            Box::new(|r| {
                r.extras.insert("top_logprobs".into(), json!(2));
            }),
        ),
    ]
}

#[test]
fn any_change_the_model_would_see_changes_the_key_and_nothing_else_does() {
    let base = full_request();
    let k = key(&base);
    assert_eq!(k, key(&base.clone()), "equal requests, equal keys");
    let mut seen = std::collections::HashSet::new();
    seen.insert(k.clone());
    for (what, change) in mutations() {
        let mut r = base.clone();
        change(&mut r);
        let changed = key(&r);
        assert_ne!(changed, k, "changing the {what} must change the key");
        assert!(
            seen.insert(changed),
            "the {what} change collides with another"
        );
    }
    assert_ne!(CacheKey::new("other-driver", Operation::Chat, &base), k);
    assert_ne!(CacheKey::new("openai", Operation::Completion, &base), k);

    // Random texts: equal inputs give equal keys, different inputs different keys.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let n = rng.usize(0..40);
        let text: String = (0..n).map(|_| rng.alphanumeric()).collect();
        let r = req(&text);
        assert_eq!(key(&r), key(&req(&text)));
        assert_ne!(key(&r), key(&req(&format!("{text} "))));
    }
}

/// A random request: some rows of every kind, some parameters, tools, a format, a tool
/// choice, a reasoning control, extras.
fn random_request(rng: &mut fastrand::Rng) -> ChatRequest {
    let word = |rng: &mut fastrand::Rng| -> String {
        (0..rng.usize(1..8)).map(|_| rng.alphanumeric()).collect()
    };
    let mut d = Dialog::new();
    if rng.bool() {
        d.push(Message::system(word(rng)));
    }
    for _ in 0..rng.usize(1..4) {
        d.push(Message::user(word(rng)));
        if rng.bool() {
            let id = word(rng);
            d.push(Message::assistant("").with_tool_call(ToolCall::new(&id, word(rng), "{}")));
            d.push(Message::tool_result(id, word(rng)));
        }
        if rng.bool() {
            d.push(
                Message::assistant(word(rng))
                    .with_reasoning(nova_llm_core::ReasoningPart::new(word(rng))),
            );
        }
    }
    d.push(Message::user(word(rng)));
    let mut r = ChatRequest::new(d);
    if rng.bool() {
        r.model = Some(word(rng));
    }
    if rng.bool() {
        r.params.temperature = Some(f64::from(rng.u8(0..=20)) / 10.0);
    }
    if rng.bool() {
        r.params.max_tokens = Some(rng.u32(1..1000));
    }
    if rng.bool() {
        r.params.stop = vec![word(rng)];
    }
    if rng.bool() {
        r = r.tool(Tool::new(word(rng), json!({"type": "object"})));
        r.tool_choice = Some(ToolChoice::Auto);
    }
    if rng.bool() {
        r = r.json_schema(word(rng), json!({"type": "object"}));
    }
    if rng.bool() {
        r.reasoning = Some(nova_llm_core::Reasoning::Budget(rng.u32(1..10_000)));
    }
    if rng.bool() {
        r.extras.insert(word(rng), json!(rng.u8(..)));
    }
    r
}

/// A change to a field that reaches the wire and changes the answer (what it changed): it
/// must change the key.
fn wire_change(rng: &mut fastrand::Rng, r: &mut ChatRequest) -> &'static str {
    let rows = r.dialog.messages_mut();
    let last = rows.len() - 1;
    match rng.usize(0..12) {
        0 => {
            rows[last].content.push(ContentPart::text("!"));
            "a row's text"
        }
        1 => {
            rows[last].role = nova_llm_core::Role::Assistant;
            "a row's role"
        }
        2 => {
            r.model = Some(format!("{}-x", r.model.as_deref().unwrap_or("m")));
            "the model"
        }
        3 => {
            r.params.temperature = Some(r.params.temperature.map_or(0.5, |t| t + 0.1));
            "the temperature"
        }
        4 => {
            r.params.max_tokens = Some(r.params.max_tokens.map_or(7, |n| n + 1));
            "max tokens"
        }
        5 => {
            r.tool_choice = Some(ToolChoice::None);
            r.tools.push(Tool::new("added", json!({})));
            "the tools and tool choice"
        }
        6 => {
            r.response_format = ResponseFormat::JsonObject;
            "the response format"
        }
        7 => {
            r.reasoning = Some(match r.reasoning {
                Some(nova_llm_core::Reasoning::Off) => nova_llm_core::Reasoning::Budget(1),
                _ => nova_llm_core::Reasoning::Off,
            });
            "the reasoning control"
        }
        8 => {
            r.extras.insert("added_extra".into(), json!(1));
            "the extras"
        }
        9 => {
            rows.push(Message::user("more"));
            "a new visible row"
        }
        10 => {
            rows[last].is_error = !rows[last].is_error;
            "whether a tool failed"
        }
        _ => {
            rows[last]
                .content
                .push(ContentPart::image_url("https://x/y.png"));
            "an image"
        }
    }
}

/// A change that never reaches the wire, or never changes the answer (what it changed): it
/// must not change the key.
fn silent_change(rng: &mut fastrand::Rng, r: &mut ChatRequest) -> &'static str {
    let rows = r.dialog.messages_mut();
    let at = rng.usize(0..rows.len());
    match rng.usize(0..4) {
        0 => {
            rows.insert(at, Message::user("a note").with_hidden(true));
            "a hidden row"
        }
        1 => {
            rows[at].metadata.insert("ui".into(), json!(rng.u8(..)));
            "a row's metadata"
        }
        2 => {
            rows[at].cache_breakpoint = Some(nova_llm_core::CacheTtl::Long);
            "a cache breakpoint"
        }
        _ => {
            // The same extras, inserted in another order.
            let entries: Vec<_> = r
                .extras
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            r.extras.clear();
            for (k, v) in entries.into_iter().rev() {
                r.extras.insert(k, v);
            }
            "the order of the extras"
        }
    }
}

#[test]
fn a_property_any_change_on_the_wire_changes_the_key_and_no_other_does() {
    let mut rng = fastrand::Rng::with_seed(32);
    for round in 0..2_000 {
        let base = random_request(&mut rng);
        let k = key(&base);
        let mut changed = base.clone();
        let what = wire_change(&mut rng, &mut changed);
        assert_ne!(
            key(&changed),
            k,
            "round {round}: changing {what} kept the key"
        );
        let mut silent = base.clone();
        let what = silent_change(&mut rng, &mut silent);
        assert_eq!(
            key(&silent),
            k,
            "round {round}: changing {what} changed the key"
        );
        // The service is part of the key too.
        assert_ne!(CacheKey::new("anthropic", Operation::Chat, &base), k);
    }
}

fn cached(mock: &MockDriver) -> (Provider, crate::EventReceiver) {
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::in_memory(1000, None))
        .build();
    let rx = p.subscribe();
    (p, rx)
}

fn cache_events(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::CacheHit => Some("hit"),
            EventKind::CacheMiss => Some("miss"),
            EventKind::CacheStored => Some("stored"),
            EventKind::Coalesced => Some("coalesced"),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_hit_skips_the_driver_and_returns_the_same_reply() {
    let mock = MockDriver::new();
    let (p, mut rx) = cached(&mock);
    assert_eq!(p.layers(), ["events", "cache"]);
    let first = p.chat(req("q")).await.unwrap();
    let second = p.chat(req("q")).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(mock.calls(), 1);
    let events = rx.drain();
    assert_eq!(cache_events(&events), ["miss", "stored", "hit"]);
    let done: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Completed(c) => Some((c.from_cache, c.cost_usd)),
            _ => None,
        })
        .collect();
    assert_eq!(done[1], (true, Some(0.0)));
    assert!(!done[0].0);
    // A different request misses.
    p.chat(req("other")).await.unwrap();
    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn streams_are_stored_as_events_and_replayed_and_serve_plain_calls_too() {
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    let mut events = Vec::new();
    let mut s = p.chat_stream(req("q")).await.unwrap();
    while let Some(e) = next_event(&mut s).await {
        events.push(e.unwrap());
    }
    let mut replay = Vec::new();
    let mut s = p.chat_stream(req("q")).await.unwrap();
    while let Some(e) = next_event(&mut s).await {
        replay.push(e.unwrap());
    }
    assert_eq!(events, replay);
    assert!(events.len() > 3, "several deltas: {events:?}");
    let plain = p.chat(req("q")).await.unwrap();
    assert_eq!(plain.text(), "f(q)");
    assert_eq!(mock.calls(), 1);

    // And a plain reply answers a later stream.
    let first = p.chat(req("z")).await.unwrap();
    let streamed = collect_stream(p.chat_stream(req("z")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(first, streamed);
    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn errors_and_cut_or_failed_streams_are_never_stored() {
    let mock = MockDriver::new();
    let (p, mut rx) = cached(&mock);
    mock.push_error(LlmError::new(ErrorKind::Server, "boom"));
    p.chat(req("q")).await.unwrap_err();
    mock.push_stream(ScriptedStream::new().text("half"));
    collect_stream(p.chat_stream(req("q")).await.unwrap())
        .await
        .unwrap_err();
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .finish(FinishReason::Stop)
            .fail_after(1, LlmError::new(ErrorKind::Connection, "cut")),
    );
    collect_stream(p.chat_stream(req("q")).await.unwrap())
        .await
        .unwrap_err();
    assert!(!cache_events(&rx.drain()).contains(&"stored"));
    assert_eq!(p.chat(req("q")).await.unwrap().text(), "f(q)");
    assert_eq!(mock.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl_default_or_per_request() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::in_memory(100, Some(Duration::from_secs(60))))
        .build();
    p.chat(req("q")).await.unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 1, "still fresh after 59 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 2, "expired after 61 s");

    let short = CallOptions::new().extension(CacheControl::ttl(Duration::from_secs(5)));
    p.chat_with(req("s"), short).await.unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    p.chat(req("s")).await.unwrap();
    assert_eq!(mock.calls(), 4, "the per-request TTL applied");
}

#[tokio::test]
async fn bypass_and_no_store_are_honoured() {
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    p.chat_with(
        req("q"),
        CallOptions::new().extension(CacheControl::no_store()),
    )
    .await
    .unwrap();
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 2, "the first reply was not stored");
    p.chat_with(
        req("q"),
        CallOptions::new().extension(CacheControl::bypass()),
    )
    .await
    .unwrap();
    assert_eq!(mock.calls(), 3, "bypass does not read the stored reply");
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 3);
}

#[tokio::test]
async fn the_memory_store_is_bounded_by_entries_or_bytes() {
    let store = MemoryStore::new(10, None);
    for i in 0..100 {
        let k = key(&req(&format!("q{i}")));
        store
            .put(
                &k,
                CachedReply::from_response(&ChatResponse::from_text("a")),
                None,
            )
            .await
            .unwrap();
    }
    // Evicted on insert: never over the bound, not even for a moment.
    assert!(store.entry_count() <= 10, "{}", store.entry_count());

    let store = MemoryStore::with_max_bytes(10_000, None);
    let big = ChatResponse::from_text("x".repeat(1000));
    for i in 0..100 {
        let k = key(&req(&format!("q{i}")));
        store
            .put(&k, CachedReply::from_response(&big), None)
            .await
            .unwrap();
    }
    assert!(store.entry_count() <= 10, "{}", store.entry_count());
    assert!(store.entry_count() >= 1);
    assert!(store.weight() <= 10_000, "{}", store.weight());
    // The newest entry is there (the oldest went first).
    let newest = key(&req("q99"));
    assert!(store.get(&newest).await.unwrap().is_some());
}

#[tokio::test]
async fn the_memory_store_counts_weighs_and_clears_its_entries() {
    let small = CachedReply::from_response(&ChatResponse::from_text("a"));
    let big = CachedReply::from_response(&ChatResponse::from_text("x".repeat(1000)));
    assert!(!small.is_empty() && !big.is_empty());
    assert_ne!(small, big);
    assert_eq!(small, small.clone());
    let keys: Vec<_> = (0..3).map(|i| key(&req(&format!("q{i}")))).collect();

    let by_count = MemoryStore::new(10, None);
    let by_bytes = MemoryStore::with_max_bytes(1 << 20, None);
    for (k, reply) in keys.iter().zip([&small, &big, &small]) {
        by_count.put(k, reply.clone(), None).await.unwrap();
        by_bytes.put(k, reply.clone(), None).await.unwrap();
    }
    assert_eq!(by_count.entry_count(), 3);
    assert_eq!(by_count.weight(), 3, "one per entry");
    assert_eq!(by_bytes.entry_count(), 3);
    let bytes = 2 * small.approx_bytes() + big.approx_bytes();
    assert_eq!(by_bytes.weight(), bytes as u64, "their approximate bytes");
    assert!(by_bytes.weight() > 1000);

    for store in [&by_count, &by_bytes] {
        store.clear();
        assert_eq!((store.entry_count(), store.weight()), (0, 0));
        for k in &keys {
            assert!(store.get(k).await.unwrap().is_none());
        }
    }
}

#[tokio::test]
async fn the_memory_store_keeps_what_is_read_again_over_what_is_read_once() {
    let store = MemoryStore::new(100, None);
    let reply = CachedReply::from_response(&ChatResponse::from_text("a"));
    let hot = key(&req("hot"));
    store.put(&hot, reply.clone(), None).await.unwrap();
    assert!(store.get(&hot).await.unwrap().is_some());
    // A scan of a thousand entries read once each does not push out the entry in use.
    for i in 0..1_000 {
        let k = key(&req(&format!("scan {i}")));
        store.put(&k, reply.clone(), None).await.unwrap();
        if i % 50 == 0 {
            assert!(store.get(&hot).await.unwrap().is_some(), "evicted at {i}");
        }
    }
    assert!(store.get(&hot).await.unwrap().is_some());
    assert!(store.entry_count() <= 100);
}

#[tokio::test]
async fn completions_and_structured_calls_are_cached_too() {
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    let a = p.complete(CompletionRequest::new("once")).await.unwrap();
    let b = p.complete(CompletionRequest::new("once")).await.unwrap();
    assert_eq!(a, b);
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let s1 = p
        .structured(req("x").json_schema("t", schema.clone()))
        .await
        .unwrap();
    let s2 = p
        .structured(req("x").json_schema("t", schema))
        .await
        .unwrap();
    assert_eq!(s1.value, s2.value);
    assert_eq!(mock.calls(), 2);
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn a_hundred_identical_concurrent_calls_make_one_driver_call() {
    multi_thread().block_on(async {
        let mock = MockDriver::new();
        let (p, mut rx) = cached(&mock);

        // 100 plain calls while the first one takes 50 ms upstream.
        mock.push(Reply::default_after(Duration::from_millis(50)));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.chat(req("same")).await.map(|r| r.text()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "f(same)");
        }
        assert_eq!(mock.calls(), 1);

        // 100 streamed calls while the first stream trickles in.
        mock.push_stream(
            ScriptedStream::from_response(
                &ChatResponse::from_text("shared words here").with_usage(Usage::new(3, 3)),
                nova_llm_mock::Chunking::Words,
            )
            .gap(Duration::from_millis(5)),
        );
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move {
                    let s = p.chat_stream(req("same-stream")).await?;
                    collect_stream(s).await.map(|r| r.text())
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "shared words here");
        }
        assert_eq!(mock.calls(), 2);

        let events = rx.drain();
        let count = |what: &str| cache_events(&events).iter().filter(|e| **e == what).count();
        // Every caller but the two leaders joined a call in flight (or, arriving after its
        // end, hit the stored reply).
        assert_eq!(count("coalesced") + count("hit"), 198);
        assert_eq!(count("stored"), 2);
        super::events::assert_exactly_once(&events);
    });
}

/// "one two three" in three deltas, 10 ms apart.
fn one_two_three() -> ScriptedStream {
    ScriptedStream::new()
        .text("one ")
        .text("two ")
        .text("three")
        .finish(FinishReason::Stop)
        .gap(Duration::from_millis(10))
}

/// "w0 w1 … " up to `n` words: what a stream of [`words`] says.
fn words_text(n: usize) -> String {
    (0..n).map(|i| format!("w{i} ")).collect()
}

/// A stream of `n` text deltas, "w0 " to "w{n-1} " (about 37 bytes an event for the cache's
/// size cap), without its finish.
fn words(n: usize) -> ScriptedStream {
    (0..n).fold(ScriptedStream::new(), |s, i| s.text(format!("w{i} ")))
}

/// The text of the next `n` events of `s`.
async fn read_text(s: &mut ChatStream, n: usize) -> String {
    let mut text = String::new();
    for _ in 0..n {
        if let Some(Ok(nova_llm_core::StreamEvent::TextDelta { text: t })) = next_event(s).await {
            text.push_str(&t);
        }
    }
    text
}

/// Two callers of one shared stream: `b` reads it to the end in a task of its own; `a`
/// has read what was there and polled the upstream stream last (so its waker, not `b`'s,
/// is the one the upstream stream holds).
async fn a_polled_last(
    p: &Provider,
) -> (
    ChatStream,
    tokio::task::JoinHandle<Result<ChatResponse, LlmError>>,
) {
    let mut a = p.chat_stream(req("q")).await.unwrap();
    let b = p.chat_stream(req("q")).await.unwrap();
    let b = tokio::spawn(collect_stream(b));
    tokio::task::yield_now().await;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, next_event(&mut a)).await {
        event.unwrap();
    }
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn a_late_joiner_of_a_stream_gets_what_was_sent_then_the_rest_live() {
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    mock.push_stream(one_two_three());
    let mut first = p.chat_stream(req("q")).await.unwrap();
    assert!(next_event(&mut first).await.is_some());
    assert!(next_event(&mut first).await.is_some());
    let late = p.chat_stream(req("q")).await.unwrap();
    let late = collect_stream(late).await.unwrap();
    let first = collect_stream(first).await.unwrap();
    assert_eq!(late.text(), "one two three");
    // The first caller had read "one " and "two " itself; the rest of its stream went on.
    assert_eq!(first.text(), "three");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_leader_going_away_lets_a_waiting_caller_take_over() {
    let mock = MockDriver::new();
    let (p, mut rx) = cached(&mock);
    mock.push(Reply::default_after(Duration::from_secs(1)));
    let leader = tokio::spawn({
        let p = p.clone();
        async move { p.chat(req("q")).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let follower = tokio::spawn({
        let p = p.clone();
        async move { p.chat(req("q")).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // A plain call runs in its leader's task (no task is spawned per call): when the leader
    // goes, the follower sends the call itself.
    assert_eq!(follower.await.unwrap().unwrap().text(), "f(q)");
    assert_eq!(mock.calls(), 2);
    // Its reply was stored for later callers.
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 2);
    assert!(cache_events(&rx.drain()).contains(&"stored"));
}

#[tokio::test(start_paused = true)]
async fn a_follower_going_away_does_not_disturb_the_leader() {
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .text("b")
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(10)),
    );
    let mut leader = p.chat_stream(req("q")).await.unwrap();
    let mut follower = p.chat_stream(req("q")).await.unwrap();
    next_event(&mut follower).await.unwrap().unwrap();
    drop(follower);
    next_event(&mut leader).await.unwrap().unwrap();
    assert_eq!(collect_stream(leader).await.unwrap().text(), "b");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn when_the_caller_driving_a_stream_goes_away_a_waiting_one_drives_it_on() {
    // No task runs a shared stream: whichever caller waits for an event polls the upstream
    // stream. When the caller that polled it last goes away, a caller that is waiting
    // must be woken to poll it, or it would wait forever.
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    mock.push_stream(one_two_three());
    let (a, b) = a_polled_last(&p).await;
    drop(a);
    let b = tokio::time::timeout(Duration::from_secs(5), b)
        .await
        .expect("the waiting caller drove the stream on")
        .unwrap()
        .unwrap();
    assert_eq!(b.text(), "one two three");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_stops_reading_does_not_hold_up_the_others() {
    // `a` polls the shared stream last and then keeps it without reading (its task is busy
    // elsewhere). The upstream stream must still be driven for `b`.
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    mock.push_stream(one_two_three());
    let (a, b) = a_polled_last(&p).await;
    // `a` is kept, unread, while `b` finishes.
    let b = tokio::time::timeout(Duration::from_secs(5), b)
        .await
        .expect("the stalled caller did not hold up the other")
        .unwrap()
        .unwrap();
    assert_eq!(b.text(), "one two three");
    // `a` can still read the rest afterwards.
    assert_eq!(collect_stream(a).await.unwrap().text(), "two three");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn callers_still_at_the_start_of_an_ended_stream_read_every_event() {
    // Once the shared stream has ended nobody can join, so events every remaining caller
    // has read are let go, and the last caller takes events instead of copying them. Two
    // callers that had read nothing when it ended must both still get every event.
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    mock.push_stream(one_two_three());
    let mut callers = Vec::new();
    for _ in 0..3 {
        callers.push(p.chat_stream(req("q")).await.unwrap());
    }
    let mut read = Vec::new();
    // The first drives the stream to its end and goes; then the two others read, one
    // after the other.
    for mut s in callers {
        let mut events = Vec::new();
        while let Some(e) = next_event(&mut s).await {
            events.push(e.unwrap());
        }
        read.push(events);
    }
    assert!(read[0].len() >= 4, "{:?}", read[0]);
    assert_eq!(read[1], read[0]);
    assert_eq!(read[2], read[0]);
    assert_eq!(mock.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn when_every_caller_goes_away_the_upstream_call_is_abandoned() {
    let mock = MockDriver::new();
    let layer = CacheLayer::in_memory(10, None);
    let p = Provider::builder(mock.clone()).cache(layer.clone()).build();
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .text("b")
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(100)),
    );
    let mut a = p.chat_stream(req("q")).await.unwrap();
    let b = p.chat_stream(req("q")).await.unwrap();
    assert_eq!(layer.in_flight(), 1);
    next_event(&mut a).await.unwrap().unwrap();
    drop(a);
    assert_eq!(layer.in_flight(), 1, "b still waits");
    drop(b);
    assert_eq!(layer.in_flight(), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    // Nothing was stored: the next call goes upstream.
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_error_is_shared_with_the_waiters_but_not_stored() {
    let mock = MockDriver::new();
    let (p, _rx) = cached(&mock);
    mock.push(Reply::error_kind(ErrorKind::Overloaded, "busy").after(Duration::from_millis(100)));
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.chat(req("q")).await })
        })
        .collect();
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert_eq!(err.message(), "busy");
    }
    assert_eq!(mock.calls(), 1);
    assert_eq!(p.chat(req("q")).await.unwrap().text(), "f(q)");
    assert_eq!(mock.calls(), 2);

    // A stream that fails before output fails each caller's `chat_stream` itself.
    mock.push(Reply::error_kind(ErrorKind::Authentication, "bad key"));
    let err = p.chat_stream(req("s")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Authentication);
}

#[tokio::test]
async fn a_shared_store_trait_object_plugs_in() {
    let store: Arc<dyn CacheStore> = Arc::new(MemoryStore::new(10, None));
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::shared(store.clone()))
        .build();
    p.chat(req("q")).await.unwrap();
    let k = CacheKey::new("mock", Operation::Chat, &req("q"));
    let stored = store.get(&k).await.unwrap().unwrap();
    assert_eq!(stored.to_response().unwrap().text(), "f(q)");
    store.remove(&k).await.unwrap();
    p.chat(req("q")).await.unwrap();
    assert_eq!(mock.calls(), 2);
}

/// A store whose backend is down.
#[derive(Debug)]
struct Down;

#[nova_llm_core::async_trait]
impl CacheStore for Down {
    async fn get(&self, _: &CacheKey) -> Result<Option<CachedReply>, LlmError> {
        Err(LlmError::new(ErrorKind::Connection, "store down"))
    }

    async fn put(&self, _: &CacheKey, _: CachedReply, _: Option<Duration>) -> Result<(), LlmError> {
        Err(LlmError::new(ErrorKind::Timeout, "store slow"))
    }

    async fn remove(&self, _: &CacheKey) -> Result<(), LlmError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_store_degrades_to_a_miss_and_says_so() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::new(Down))
        .build();
    let mut rx = p.subscribe();
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
    let said: Vec<(String, String)> = rx
        .drain()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::BackendUnavailable {
                backend,
                fallback,
                error,
            } => {
                assert!(error.contains("store"), "{error}");
                Some((backend, fallback))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        [
            ("cache store".to_owned(), "treated as a miss".to_owned()),
            (
                "cache store".to_owned(),
                "the reply was not stored".to_owned()
            )
        ]
    );
}

#[tokio::test]
async fn replies_over_the_size_cap_pass_but_are_not_kept() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::in_memory(100, None).max_entry_bytes(2_000))
        .build();
    let mut rx = p.subscribe();
    let big = "word ".repeat(1_000);
    mock.push_text(big.clone());
    assert_eq!(p.prompt("big").await.unwrap(), big);
    assert_eq!(
        p.prompt("big").await.unwrap(),
        "f(big)",
        "not kept: asked again"
    );
    p.prompt("small").await.unwrap();
    p.prompt("small").await.unwrap();
    assert_eq!(mock.calls(), 3, "the small reply was kept");
    assert_eq!(
        cache_events(&rx.drain())
            .iter()
            .filter(|e| **e == "stored")
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_past_the_size_cap_is_neither_kept_nor_joined_and_frees_what_was_read() {
    let mock = MockDriver::new();
    let layer = CacheLayer::in_memory(100, None).max_entry_bytes(400);
    let p = Provider::builder(mock.clone()).cache(layer.clone()).build();
    mock.push_stream(
        words(50)
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(10)),
    );
    let want = words_text(50);
    // A caller that joins before the cap is reached gets the whole stream too.
    let mut first = p.chat_stream(req("long")).await.unwrap();
    let second = p.chat_stream(req("long")).await.unwrap();
    let mut got = read_text(&mut first, 20).await;
    // Past the cap (about 35 bytes an event, 400 bytes): no longer joinable.
    assert_eq!(layer.in_flight(), 0);
    let third = p.chat_stream(req("long")).await.unwrap();
    got.push_str(&collect_stream(first).await.unwrap().text());
    assert_eq!(got, want);
    assert_eq!(collect_stream(second).await.unwrap().text(), want);
    assert_eq!(collect_stream(third).await.unwrap().text(), "f(long)");
    assert_eq!(mock.calls(), 2, "the third call went upstream on its own");
    // The long reply was not stored; the third call's short one was.
    assert_eq!(p.chat(req("long")).await.unwrap().text(), "f(long)");
    assert_eq!(mock.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_caller_left_alone_on_a_stream_past_the_cap_reads_the_rest_whole() {
    // The caller ahead takes each event as the upstream gave it and leaves a copy for the
    // caller behind. When one of them goes away past the cap, the other is alone (nobody
    // can join): it reads what it is behind on from the copies, then takes events without
    // copying them, and its stream stays whole.
    let want = words_text(60);
    for ahead_leaves in [true, false] {
        let mock = MockDriver::new();
        let layer = CacheLayer::in_memory(100, None).max_entry_bytes(400);
        let p = Provider::builder(mock.clone()).cache(layer.clone()).build();
        mock.push_stream(
            words(60)
                .finish(FinishReason::Stop)
                .gap(Duration::from_millis(10)),
        );
        let mut ahead = p.chat_stream(req("long")).await.unwrap();
        let mut behind = p.chat_stream(req("long")).await.unwrap();
        let read_ahead = read_text(&mut ahead, 30).await;
        let read_behind = read_text(&mut behind, 5).await;
        assert_eq!(layer.in_flight(), 0, "past the cap");
        let (rest, read) = if ahead_leaves {
            drop(ahead);
            (collect_stream(behind).await.unwrap(), read_behind)
        } else {
            drop(behind);
            (collect_stream(ahead).await.unwrap(), read_ahead)
        };
        assert_eq!(read + &rest.text(), want, "ahead leaves: {ahead_leaves}");
        assert_eq!(mock.calls(), 1);
    }
}

/// Streams its deltas, then ends without a finish: a driver that breaks the stream
/// contract, which the cache must still turn into a classified error.
struct Unfinished(&'static [&'static str]);

#[nova_llm_core::async_trait]
impl LlmDriver for Unfinished {
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, LlmError> {
        Err(LlmError::new(ErrorKind::Other, "stream only"))
    }

    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, LlmError> {
        Ok(nova_llm_core::stream_from_events(
            self.0
                .iter()
                .map(|t| nova_llm_core::StreamEvent::TextDelta {
                    text: (*t).to_owned(),
                })
                .collect(),
        ))
    }
}

#[tokio::test]
async fn a_stream_ending_without_a_finish_fails_carrying_all_it_said_kept_whole_or_past_the_cap() {
    const WORDS: &[&str] = &["one ", "two ", "three ", "four ", "five ", "six"];
    // A cap the stream stays under (its events all kept until the end), and one it passes
    // at the third event (events let go of once read).
    for cap in [10_000, 100] {
        let p = Provider::builder(Unfinished(WORDS))
            .cache(CacheLayer::in_memory(10, None).max_entry_bytes(cap))
            .build();
        let mut s = p.chat_stream(req("q")).await.unwrap();
        let mut text = String::new();
        let err = loop {
            match next_event(&mut s).await {
                Some(Ok(nova_llm_core::StreamEvent::TextDelta { text: t })) => text.push_str(&t),
                Some(Ok(other)) => panic!("unexpected {other:?}"),
                Some(Err(e)) => break e,
                None => panic!("the stream ended without an error"),
            }
        };
        assert_eq!(text, WORDS.concat(), "cap {cap}");
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted, "cap {cap}");
        assert_eq!(
            err.partial().map(|p| p.text.as_str()),
            Some("one two three four five six"),
            "cap {cap}"
        );
    }
}

/// A store whose `put` says it has started, then waits for a permit (it only has `put`, so
/// the cache's `put_shared` reaches it through the trait's default).
struct Gated {
    inner: MemoryStore,
    started: Arc<tokio::sync::Notify>,
    permits: Arc<tokio::sync::Semaphore>,
}

#[nova_llm_core::async_trait]
impl CacheStore for Gated {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, LlmError> {
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &CacheKey,
        reply: CachedReply,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        self.started.notify_one();
        self.permits
            .acquire()
            .await
            .map_err(|_| LlmError::new(ErrorKind::Other, "closed"))?
            .forget();
        self.inner.put(key, reply, ttl).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<(), LlmError> {
        self.inner.remove(key).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_caller_joining_while_a_stream_is_being_stored_reads_it_all_at_once() {
    // A complete streamed reply is moved, not copied, into the reply the store keeps; the
    // flight stays joinable until the store has it, and a caller joining meanwhile reads
    // the events from that reply.
    let mock = MockDriver::new();
    let store = MemoryStore::new(10, None);
    let started = Arc::new(tokio::sync::Notify::new());
    let permits = Arc::new(tokio::sync::Semaphore::new(0));
    let layer = CacheLayer::new(Gated {
        inner: store.clone(),
        started: Arc::clone(&started),
        permits: Arc::clone(&permits),
    });
    let p = Provider::builder(mock.clone()).cache(layer.clone()).build();
    mock.push_stream(one_two_three());
    let mut first = p.chat_stream(req("q")).await.unwrap();
    let first = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = next_event(&mut first).await {
            events.push(e.unwrap());
        }
        events
    });
    started.notified().await;
    assert_eq!(layer.in_flight(), 1, "joinable until stored");
    let mut late = p.chat_stream(req("q")).await.unwrap();
    let mut got = Vec::new();
    // Everything but the finish while the store is still busy (the finish waits for it).
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::from_secs(1), next_event(&mut late)).await
    {
        got.push(e.unwrap());
    }
    assert!(
        !got.is_empty()
            && !got
                .iter()
                .any(|e| matches!(e, nova_llm_core::StreamEvent::Finish { .. })),
        "{got:?}"
    );
    permits.add_permits(1);
    while let Some(e) = next_event(&mut late).await {
        got.push(e.unwrap());
    }
    let first = first.await.unwrap();
    assert_eq!(got, first);
    assert_eq!(mock.calls(), 1);
    assert_eq!(layer.in_flight(), 0);
    let stored = store
        .get(&CacheKey::new("mock", Operation::Chat, &req("q")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.events(), first);
}

#[tokio::test]
async fn the_memory_store_keeps_a_shared_reply_itself_not_a_copy() {
    let store = MemoryStore::new(10, None);
    let k = key(&req("q"));
    let reply = Arc::new(CachedReply::from_response(
        &MockDriver::new().chat(req("q")).await.unwrap(),
    ));
    store
        .put_shared(&k, Arc::clone(&reply), None)
        .await
        .unwrap();
    assert_eq!(
        Arc::strong_count(&reply),
        2,
        "the store holds this very reply"
    );
    assert_eq!(store.get(&k).await.unwrap().as_ref(), Some(&*reply));
    store.remove(&k).await.unwrap();
    assert_eq!(Arc::strong_count(&reply), 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_stream_ready_all_at_once_reaches_every_caller_whole_kept_or_past_the_cap() {
    // Events are taken from the upstream in batches (at most 64) and by each caller as
    // many at a time as there are: 300 events all ready at once (after a first delay, while
    // which both callers join) cross several batches, and with the small cap (about 37
    // bytes an event) the flight overflows in the middle of the second one.
    let want = words_text(300);
    for cap in [1 << 20, 3_000] {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone())
            .cache(CacheLayer::in_memory(10, None).max_entry_bytes(cap))
            .build();
        mock.push(
            Reply::stream(words(300).finish(FinishReason::Stop)).after(Duration::from_millis(10)),
        );
        let (a, b) = tokio::join!(p.chat_stream(req("long")), p.chat_stream(req("long")));
        let (a, b) = tokio::join!(collect_stream(a.unwrap()), collect_stream(b.unwrap()));
        assert_eq!(a.unwrap().text(), want, "cap {cap}");
        assert_eq!(b.unwrap().text(), want, "cap {cap}");
        assert_eq!(mock.calls(), 1, "cap {cap}");
        // Kept only when it fit.
        let again = p.chat(req("long")).await.unwrap().text();
        if cap > 3_000 {
            assert_eq!(again, want);
            assert_eq!(mock.calls(), 1);
        } else {
            assert_eq!(again, "f(long)");
            assert_eq!(mock.calls(), 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn callers_joining_reading_and_leaving_at_random_each_get_the_whole_stream() {
    // On one thread, the clock paused: callers join at random times of a stream with 1 ms
    // between events.
    random_callers(40, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_on_two_threads_joining_reading_and_leaving_at_random_each_get_the_whole_stream() {
    // On two threads, for real: the flight's lock, wakers and hand-overs raced by callers
    // running at the same time, on streams with and without gaps. (Locally, 1,600 rounds
    // over four seeds passed; with a caller treated as alone while another is behind,
    // these 60 rounds failed four runs out of four.)
    random_callers(60, true).await;
}

/// Eight callers of one streamed request join at random times, read at random paces (each
/// event taken first by whoever reads first, copied for the others), and a third of them
/// leave part way. Every caller that reads to the end gets every event once, in order,
/// whether it joined a flight in progress, started one of its own (after the first passed
/// the size cap, or ended), or hit the stored reply; and no flight is left.
async fn random_callers(rounds: usize, threads: bool) {
    let want = words_text(200);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for round in 0..rounds {
        // Kept whole, or past the cap (about 37 bytes an event) a third of the way in.
        let cap = if round % 2 == 0 { 1 << 20 } else { 2_500 };
        let mock = MockDriver::new();
        let layer = CacheLayer::in_memory(10, None).max_entry_bytes(cap);
        let p = Provider::builder(mock.clone()).cache(layer.clone()).build();
        // As many replies as there may be upstream calls (one per caller at most).
        let gap = match (threads, round % 4) {
            (false, _) => Some(Duration::from_millis(1)),
            (true, 1) => Some(Duration::from_micros(100)),
            (true, _) => None,
        };
        for _ in 0..8 {
            let stream = words(200).finish(FinishReason::Stop);
            mock.push_stream(match gap {
                Some(gap) => stream.gap(gap),
                None => stream,
            });
        }
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let p = p.clone();
            let join_at = random(250);
            let leave_after = (random(3) == 0).then(|| random(200));
            let pace = random(4);
            callers.spawn(async move {
                if threads {
                    for _ in 0..join_at {
                        tokio::task::yield_now().await;
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(join_at)).await;
                }
                let mut s = p.chat_stream(req("q")).await.unwrap();
                let (mut text, mut read, mut last) = (String::new(), 0, None);
                while let Some(e) = next_event(&mut s).await {
                    let e = e.unwrap();
                    if let nova_llm_core::StreamEvent::TextDelta { text: t } = &e {
                        text.push_str(t);
                    }
                    last = Some(e);
                    read += 1;
                    if leave_after == Some(read) {
                        return None;
                    }
                    for _ in 0..pace {
                        tokio::task::yield_now().await;
                    }
                }
                Some((text, last))
            });
        }
        let mut finished = 0;
        // A generous bound (a round takes milliseconds): a lost wake-up fails the test
        // instead of hanging it.
        let all = async {
            while let Some(done) = callers.join_next().await {
                if let Some((text, last)) = done.unwrap() {
                    assert_eq!(text, want, "round {round}");
                    assert!(
                        matches!(last, Some(nova_llm_core::StreamEvent::Finish { .. })),
                        "round {round}: {last:?}"
                    );
                    finished += 1;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .unwrap_or_else(|_| panic!("round {round}: a caller never got its next event"));
        assert!(finished > 0, "round {round}");
        assert_eq!(layer.in_flight(), 0, "round {round}");
    }
}

#[tokio::test]
async fn a_reply_exactly_at_the_size_cap_is_kept_and_one_byte_over_is_not() {
    // What the driver answers, weighed as the cache weighs it.
    let plain = MockDriver::new().chat(req("edge")).await.unwrap();
    let plain_bytes = CachedReply::from_response(&plain).approx_bytes();
    let mut stream = MockDriver::new().chat_stream(req("edge")).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = next_event(&mut stream).await {
        events.push(e.unwrap());
    }
    let finish_bytes = CachedReply::event_bytes(events.last().unwrap());
    let stream_bytes = CachedReply::from_events(events).unwrap().approx_bytes();
    // With the cap one byte under, a stream's events all fit but its finish: the check
    // made once the finish (held back for it) arrives is the one that refuses.
    assert!(finish_bytes > 1);

    for (streamed, bytes) in [(false, plain_bytes), (true, stream_bytes)] {
        for (cap, kept) in [(bytes, true), (bytes - 1, false)] {
            let mock = MockDriver::new();
            let p = Provider::builder(mock.clone())
                .cache(CacheLayer::in_memory(10, None).max_entry_bytes(cap))
                .build();
            for _ in 0..2 {
                if streamed {
                    let s = p.chat_stream(req("edge")).await.unwrap();
                    assert_eq!(collect_stream(s).await.unwrap().text(), "f(edge)");
                } else {
                    assert_eq!(p.chat(req("edge")).await.unwrap().text(), "f(edge)");
                }
            }
            let calls = if kept { 1 } else { 2 };
            assert_eq!(
                mock.calls(),
                calls,
                "streamed {streamed}, cap {cap}, {bytes} bytes"
            );
        }
    }
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_fails_as_it_would_without_the_cache() {
    // Opened, then an error before any event: the caller gets the stream, then the
    // error as its first item, as from the driver itself. Only a stream that could not
    // be opened fails at the open.
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::in_memory(10, None))
        .build();
    let failing = || {
        Reply::stream(
            ScriptedStream::new()
                .text("never sent")
                .fail_after(0, LlmError::new(ErrorKind::Server, "broke at once")),
        )
    };
    mock.push(failing());
    let mut bare = mock.chat_stream(req("q")).await.unwrap();
    let first = next_event(&mut bare).await.unwrap().unwrap_err();
    assert_eq!(first.message(), "broke at once");

    mock.push(failing());
    let mut s = p.chat_stream(req("q")).await.unwrap();
    let e = next_event(&mut s).await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.message(), "broke at once");

    mock.push(Reply::error_kind(ErrorKind::Server, "could not open"));
    let e = p.chat_stream(req("q")).await.err().unwrap();
    assert_eq!(e.message(), "could not open");
}

/// When a caller of a shared stream lets go of it.
#[derive(Debug, Clone, Copy)]
enum LetsGo {
    /// Before `chat_stream` has returned (before the first event).
    BeforeTheFirstEvent,
    /// After reading this many events.
    After(usize),
    /// Never: it reads to the end.
    AtTheEnd,
}

/// One caller of the shared stream `one_two_three` (events every 10 ms).
async fn shared_caller(p: Provider, lets_go: LetsGo) {
    let call = p.chat_stream(req("q"));
    let mut s = match lets_go {
        LetsGo::BeforeTheFirstEvent => {
            let cut = tokio::time::timeout(Duration::from_millis(5), call).await;
            assert!(cut.is_err(), "let go before the first event");
            return;
        }
        _ => call.await.unwrap(),
    };
    let mut read = 0;
    while let Some(item) = next_event(&mut s).await {
        item.unwrap();
        read += 1;
        if matches!(lets_go, LetsGo::After(n) if read == n) {
            return;
        }
    }
}

/// The events of a leader and a joiner of one shared stream letting go as told.
async fn shared_stream_events(leader: LetsGo, joiner: LetsGo) -> Vec<Event> {
    let mock = MockDriver::new();
    let (p, mut rx) = cached(&mock);
    mock.push_stream(one_two_three());
    let first = tokio::spawn(shared_caller(p.clone(), leader));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let second = tokio::spawn(shared_caller(p.clone(), joiner));
    first.await.unwrap();
    second.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        mock.calls(),
        1,
        "{leader:?} / {joiner:?}: one upstream call"
    );
    rx.drain()
}

/// Every call's terminal event is its last, and it has exactly one `Started` and one
/// terminal event.
fn terminal_events_are_last(events: &[Event], what: &str) {
    let ids: std::collections::BTreeSet<_> = events.iter().map(|e| e.request_id).collect();
    for id in ids {
        let mine: Vec<&Event> = events.iter().filter(|e| e.request_id == id).collect();
        let kinds: Vec<String> = mine.iter().map(|e| format!("{:?}", e.kind)).collect();
        assert!(
            matches!(mine[0].kind, EventKind::Started { .. }),
            "{what}: {kinds:?}"
        );
        assert_eq!(
            mine.iter().filter(|e| e.is_terminal()).count(),
            1,
            "{what}: {kinds:?}"
        );
        assert!(mine.last().unwrap().is_terminal(), "{what}: {kinds:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_event_of_a_shared_stream_follows_a_callers_terminal_event() {
    use LetsGo::{After, AtTheEnd, BeforeTheFirstEvent};
    // (leader, joiner, whether the reply is stored)
    let cases = [
        (BeforeTheFirstEvent, AtTheEnd, true),
        (After(1), AtTheEnd, true),
        (After(3), AtTheEnd, true),
        (AtTheEnd, AtTheEnd, true),
        (AtTheEnd, After(1), true),
        (AtTheEnd, BeforeTheFirstEvent, true),
        (After(1), After(2), false),
        (BeforeTheFirstEvent, BeforeTheFirstEvent, false),
    ];
    for (leader, joiner, stored) in cases {
        let what = format!("{leader:?} / {joiner:?}");
        let events = shared_stream_events(leader, joiner).await;
        terminal_events_are_last(&events, &what);
        let stores = cache_events(&events)
            .iter()
            .filter(|e| **e == "stored")
            .count();
        assert_eq!(stores, usize::from(stored), "{what}");
    }
}
