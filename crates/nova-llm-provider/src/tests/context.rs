//! Context management: trimming properties over random dialogs, the middleware and its
//! event, summaries, the conversation, and (feature `tiktoken`) exact counts.

use std::sync::Arc;

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, Message, Role, ToolCall};
use nova_llm_mock::MockDriver;

use crate::context::{
    ContextLayer, ContextWindows, Conversation, Estimator, TokenCounter, TrimStrategy, trim,
};
use crate::{EventKind, Provider};

/// A random dialog: maybe a system row, then turns of user / assistant / assistant tool
/// calls with their tool results, with hidden rows sprinkled in. The last turn may end
/// with tool results.
fn random_dialog(rng: &mut fastrand::Rng) -> Dialog {
    let mut d = Dialog::new();
    if rng.bool() {
        d = d.system("system ".repeat(rng.usize(1..20)));
    }
    let turns = rng.usize(1..30);
    let mut call = 0;
    for turn in 0..turns {
        let text = |rng: &mut fastrand::Rng| "word ".repeat(rng.usize(1..60));
        d = d.user(text(rng));
        if rng.u8(0..4) == 0 {
            d = d.message(Message::user("a note").with_hidden(true));
        }
        match rng.u8(0..3) {
            0 => d = d.assistant(text(rng)),
            1 => {
                let n = rng.usize(1..4);
                let mut m = Message::assistant("");
                for k in 0..n {
                    m = m.with_tool_call(ToolCall::new(
                        format!("c{call}_{k}"),
                        "lookup",
                        format!("{{\"q\":\"{}\"}}", "x".repeat(rng.usize(1..40))),
                    ));
                }
                d = d.message(m);
                for k in 0..n {
                    d = d.tool_result(format!("c{call}_{k}"), text(rng));
                }
                call += 1;
                // An agent's request often ends with the tool results, awaiting the answer.
                if turn + 1 < turns || rng.bool() {
                    d = d.assistant(text(rng));
                }
            }
            _ => {}
        }
    }
    d
}

fn check(original: &Dialog, kept: &Dialog) {
    let rows = kept.messages();
    // Order preserved: kept rows are a subsequence of the original.
    let mut it = original.messages().iter();
    for r in rows {
        assert!(it.any(|o| o == r), "order changed or a row was invented");
    }
    // Every system and hidden row stays.
    for o in original.messages() {
        if o.role == Role::System || o.hidden {
            assert!(rows.contains(o), "a system or hidden row was dropped");
        }
    }
    // The latest user row stays.
    let last_user = original
        .messages()
        .iter()
        .rev()
        .find(|m| m.role == Role::User && !m.hidden);
    if let Some(u) = last_user {
        assert!(rows.contains(u), "the latest user row was dropped");
    }
    // Tool calls and their results stay together.
    for (i, m) in rows.iter().enumerate() {
        if m.role == Role::Tool {
            let id = m.tool_call_id.as_deref().unwrap();
            let caller = rows[..i]
                .iter()
                .rev()
                .find(|r| r.tool_calls.iter().any(|c| c.id == id));
            assert!(caller.is_some(), "a tool result lost its call");
        }
        for c in &m.tool_calls {
            assert!(
                rows.iter()
                    .any(|r| r.tool_call_id.as_deref() == Some(c.id.as_str())),
                "a tool call lost its result"
            );
        }
    }
}

#[test]
fn trimming_never_exceeds_the_budget_and_never_breaks_the_dialog() {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut trimmed_some = 0;
    for _ in 0..500 {
        let d = random_dialog(&mut rng);
        let total: usize = d
            .messages()
            .iter()
            .map(|m| Estimator.count_message(m))
            .sum();
        let budget = rng.usize(0..=total + 10);
        for strategy in [
            TrimStrategy::DropOldest,
            TrimStrategy::KeepEnds {
                first: rng.usize(0..4),
                last: rng.usize(0..4),
            },
        ] {
            match trim(&d, budget, &Estimator, strategy) {
                Ok(t) => {
                    assert!(t.tokens <= budget, "{} > {budget}", t.tokens);
                    let counted: usize = t
                        .dialog
                        .messages()
                        .iter()
                        .map(|m| Estimator.count_message(m))
                        .sum();
                    assert_eq!(counted, t.tokens);
                    assert_eq!(t.tokens + t.dropped_tokens, total);
                    check(&d, &t.dialog);
                    trimmed_some += usize::from(!t.dropped.is_empty());
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
                    // Only when what must stay does not fit: the system rows and the last
                    // user turn.
                    let rows = d.messages();
                    let u = rows
                        .iter()
                        .rposition(|m| m.role == Role::User && !m.hidden)
                        .unwrap();
                    let pinned: usize = rows
                        .iter()
                        .enumerate()
                        .filter(|(i, m)| m.role == Role::System || *i >= u)
                        .map(|(_, m)| Estimator.count_message(m))
                        .sum();
                    assert!(pinned > budget, "refused although {pinned} <= {budget}");
                }
            }
        }
    }
    assert!(trimmed_some > 100, "the property test trimmed too rarely");
}

#[test]
fn an_agents_request_ending_with_tool_results_keeps_them_with_their_call() {
    let long = "word ".repeat(200);
    let call = Message::assistant("").with_tool_call(ToolCall::new("c1", "lookup", "{}"));
    let d = Dialog::new()
        .system("s")
        .user(&long)
        .assistant(&long)
        .user("look it up")
        .message(call.clone())
        .tool_result("c1", "found");
    let t = trim(&d, 100, &Estimator, TrimStrategy::DropOldest).unwrap();
    assert_eq!(t.dropped.len(), 2, "the old turn went");
    let rows = t.dialog.messages();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2], call);
    assert_eq!(rows[3].tool_call_id.as_deref(), Some("c1"));
}

#[test]
fn drop_oldest_and_keep_ends_choose_different_turns() {
    let mut d = Dialog::new().system("s");
    for i in 0..6 {
        d = d
            .user(format!("q{i} {}", "x".repeat(36)))
            .assistant(format!("a{i} {}", "y".repeat(36)));
    }
    d = d.user("last");
    let texts = |d: &Dialog| -> Vec<String> {
        d.messages()
            .iter()
            .map(|m| m.text().split(' ').next().unwrap_or("").to_owned())
            .collect()
    };
    // "s" and "last" cost 5 tokens each, every q/a row 4 + 10 = 14: a budget of 80 keeps
    // five of the twelve turns' rows.
    let t = trim(&d, 80, &Estimator, TrimStrategy::DropOldest).unwrap();
    assert_eq!(
        texts(&t.dialog),
        ["s", "a3", "q4", "a4", "q5", "a5", "last"]
    );
    assert_eq!(t.tokens, 80);
    let k = trim(
        &d,
        80,
        &Estimator,
        TrimStrategy::KeepEnds { first: 2, last: 2 },
    )
    .unwrap();
    assert_eq!(
        texts(&k.dialog),
        ["s", "q0", "a0", "a4", "q5", "a5", "last"]
    );
}

fn long_request(model: &str, turns: usize) -> ChatRequest {
    let mut d = Dialog::new().system("be brief");
    for i in 0..turns {
        d = d.user(format!("question {i} {}", "word ".repeat(200)));
        d = d.assistant(format!("answer {i} {}", "word ".repeat(200)));
    }
    ChatRequest::new(d.user("the latest question")).model(model)
}

#[tokio::test]
async fn the_middleware_trims_to_the_models_window_and_says_so() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .context(
            ContextLayer::new()
                .windows(ContextWindows::empty().with("small", 2_000))
                .reply_room(500),
        )
        .build();
    let mut rx = p.subscribe();
    p.chat(long_request("small", 20)).await.unwrap();
    let sent = mock.last_chat_request().unwrap();
    let tokens: usize = sent
        .dialog
        .messages()
        .iter()
        .map(|m| Estimator.count_message(m))
        .sum();
    assert!(tokens <= 1_500, "{tokens}");
    assert_eq!(sent.dialog.messages()[0].text(), "be brief");
    assert_eq!(
        sent.dialog.last_visible().unwrap().text(),
        "the latest question"
    );
    let trimmed: Vec<_> = rx
        .drain()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ContextTrimmed {
                dropped_rows,
                summarized,
                ..
            } => Some((dropped_rows, summarized)),
            _ => None,
        })
        .collect();
    assert_eq!(trimmed.len(), 1);
    assert_eq!(trimmed[0].0, 41 - sent.dialog.len() + 1);
    assert!(!trimmed[0].1);

    // A request that fits, or a model with no known window, is left alone.
    p.chat(long_request("small", 1)).await.unwrap();
    assert_eq!(mock.last_chat_request().unwrap().dialog.len(), 4);
    p.chat(long_request("unknown-model", 20)).await.unwrap();
    assert_eq!(mock.last_chat_request().unwrap().dialog.len(), 42);
    assert!(
        rx.drain()
            .iter()
            .all(|e| !matches!(e.kind, EventKind::ContextTrimmed { .. }))
    );
}

#[test]
fn a_row_costs_its_parts_its_name_and_its_tool_calls() {
    let e = Estimator;
    // "hello": 2 tokens, and 4 for the row.
    assert_eq!(e.count_message(&Message::user("hello")), 6);
    // A name: its tokens and one more.
    assert_eq!(e.count_message(&Message::user("hello").with_name("bob")), 8);
    // A tool call: its name (2) and arguments (4), and 3 more; two calls, twice that.
    let call = || ToolCall::new("c1", "lookup", r#"{"query":"abc"}"#);
    let one = Message::assistant("").with_tool_call(call());
    assert_eq!(e.count_message(&one), 4 + 9);
    assert_eq!(e.count_message(&one.clone().with_tool_call(call())), 4 + 18);
    // An image: 85.
    let seen = Message::user("hello").with_part(nova_llm_core::ContentPart::image_url("u"));
    assert_eq!(e.count_message(&seen), 6 + 85);
    // Hidden: never sent, so nothing.
    assert_eq!(e.count_message(&seen.with_hidden(true)), 0);
}

/// Counts every text as 1,000 tokens.
struct Heavy;

impl TokenCounter for Heavy {
    fn count_text(&self, _: &str) -> usize {
        1_000
    }
}

#[tokio::test]
async fn the_middleware_counts_and_trims_as_it_is_told() {
    let mock = MockDriver::new();
    let window = || ContextWindows::empty().with("small", 3_000);
    // Four rows of about 250 tokens fit 3,000 by the estimator, not at 1,000 a text:
    // the old turn goes.
    let p = Provider::builder(mock.clone())
        .context(
            ContextLayer::new()
                .windows(window())
                .reply_room(0)
                .counter(Heavy),
        )
        .build();
    // It sits under its name, where the documented order puts it.
    assert_eq!(p.layers(), ["events", "context"]);
    p.chat(long_request("small", 1)).await.unwrap();
    let sent = mock.last_chat_request().unwrap();
    assert_eq!(
        sent.dialog.len(),
        2,
        "the system row and the latest question"
    );

    // Keeping the first turn drops later ones instead of it.
    let keep_first = Provider::builder(mock.clone())
        .context(
            ContextLayer::new()
                .windows(window())
                .strategy(TrimStrategy::KeepEnds { first: 1, last: 0 }),
        )
        .build();
    assert_eq!(first_turn_sent(&keep_first, &mock).await, "question 0");
    let drop_oldest = Provider::builder(mock.clone())
        .context(ContextLayer::new().windows(window()))
        .build();
    assert_ne!(first_turn_sent(&drop_oldest, &mock).await, "question 0");
}

/// The first two words of the first turn `p` sends of a 20-turn request (trimmed).
async fn first_turn_sent(p: &Provider, mock: &MockDriver) -> String {
    p.chat(long_request("small", 20)).await.unwrap();
    let sent = mock.last_chat_request().unwrap();
    assert!(sent.dialog.len() < 42, "trimmed");
    sent.dialog.messages()[1]
        .text()
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn dropped_turns_can_be_replaced_by_a_summary() {
    let mock = MockDriver::new();
    let writer = MockDriver::builder().name("writer").build();
    writer.push_text("They discussed twenty questions.");
    let p = Provider::builder(mock.clone())
        .context(
            ContextLayer::new()
                .windows(ContextWindows::empty().with("small", 3_000))
                .summarize_with(Arc::new(writer.clone())),
        )
        .build();
    p.chat(long_request("small", 20)).await.unwrap();
    let sent = mock.last_chat_request().unwrap();
    assert_eq!(sent.dialog.messages()[0].text(), "be brief");
    assert_eq!(
        sent.dialog.messages()[1].text(),
        "Summary of the earlier conversation: They discussed twenty questions."
    );
    assert_eq!(writer.calls(), 1);
    let asked = writer.last_chat_request().unwrap();
    assert!(
        asked
            .dialog
            .last_visible()
            .unwrap()
            .text()
            .contains("question 0")
    );
}

#[tokio::test]
async fn the_conversation_keeps_its_history_and_sends_what_fits() {
    let mock = MockDriver::new();
    let mut chat = Conversation::new(Arc::new(mock.clone()), 300).system("s");
    for i in 0..20 {
        let reply = chat
            .send(format!("question {i} {}", "word ".repeat(20)))
            .await
            .unwrap();
        assert!(reply.text().starts_with("f(question"));
    }
    assert_eq!(chat.history().len(), 41, "the whole history is kept");
    let sent = mock.last_chat_request().unwrap();
    let tokens: usize = sent
        .dialog
        .messages()
        .iter()
        .map(|m| Estimator.count_message(m))
        .sum();
    assert!(tokens <= 300);
    assert!(sent.dialog.len() < 41);

    // A failed call leaves the history as it was.
    mock.push_error(nova_llm_core::LlmError::new(ErrorKind::Server, "boom"));
    chat.send("this fails").await.unwrap_err();
    assert_eq!(chat.history().len(), 41);
    // A turn that cannot fit at all is refused.
    let e = chat.send("word ".repeat(2_000)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    // Streamed turns join the history too; the events are seen as they come.
    let mut deltas = String::new();
    let reply = chat
        .send_streaming("streamed", |e| {
            if let nova_llm_core::StreamEvent::TextDelta { text } = e {
                deltas.push_str(text);
            }
        })
        .await
        .unwrap();
    assert_eq!(deltas, "f(streamed)");
    assert_eq!(reply.text(), deltas);
    assert_eq!(chat.history().len(), 43);
    chat.set_system("be kind");
    assert_eq!(chat.history().messages()[0].text(), "be kind");
    assert_eq!(chat.history().len(), 43);
    chat.reset();
    assert_eq!(chat.history().len(), 1);
    assert_eq!(chat.history().messages()[0].text(), "be kind");
    chat.set_system("s");
    assert_eq!(
        chat.tokens(),
        Estimator.count_message(&Message::system("s"))
    );
    let d: Arc<dyn LlmDriver> = Arc::new(mock);
    assert_eq!(d.name(), "mock");
}

#[cfg(feature = "tiktoken")]
#[test]
fn tiktoken_counts_exactly_and_loads_once() {
    use crate::context::TiktokenCounter;
    let c = TiktokenCounter::for_model("gpt-4o-mini").unwrap();
    // "hello world" is two tokens in o200k_base.
    assert_eq!(c.count_text("hello world"), 2);
    let again = TiktokenCounter::for_model("gpt-4o-2024-08-06").unwrap();
    assert_eq!(again.count_text("hello world"), 2);
    let old = TiktokenCounter::for_model("gpt-3.5-turbo").unwrap();
    assert_eq!(old.count_text("hello world"), 2);
    let e = TiktokenCounter::for_model("llama3.2").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

/// The tokens a dialog costs when sent, by the estimator.
fn sent_tokens(d: &Dialog) -> usize {
    d.messages()
        .iter()
        .map(|m| Estimator.count_message(m))
        .sum()
}

/// A dialog of about 680 tokens: a system row, six turns, the latest question.
fn dialog_of_680() -> Dialog {
    let mut d = Dialog::new().system("be brief");
    for i in 0..3 {
        d = d.user(format!("question {i} {}", "word ".repeat(100)));
        d = d.assistant(format!("answer {i} {}", "word ".repeat(70)));
    }
    d.user("the latest question")
}

/// A context layer for the model `m` with `window` tokens, 100 kept for the reply.
fn window_of_m(window: usize) -> ContextLayer {
    ContextLayer::new()
        .windows(ContextWindows::empty().with("m", window))
        .reply_room(100)
}

/// A provider over `mock` whose model `m` has `window` tokens, 100 kept for the reply,
/// summarizing with `writer`.
fn summarizing(mock: &MockDriver, writer: &MockDriver, window: usize) -> Provider {
    Provider::builder(mock.clone())
        .context(window_of_m(window).summarize_with(Arc::new(writer.clone())))
        .build()
}

#[tokio::test]
async fn a_summary_counts_against_the_budget_and_is_cut_to_fit() {
    let dialog = dialog_of_680();
    let total = sent_tokens(&dialog);
    assert!((650..720).contains(&total), "{total}");
    let budget = total - 50; // a window of total + 50, 100 of it for the reply
    let mock = MockDriver::new();
    let writer = MockDriver::builder().name("writer").build();
    // A summarizer that ignores `max_tokens` and writes 800 words.
    writer.push_text("summary ".repeat(800));
    let p = summarizing(&mock, &writer, total + 50);
    p.chat(ChatRequest::new(dialog.clone()).model("m"))
        .await
        .unwrap();
    let sent = mock.last_chat_request().unwrap();
    assert!(
        sent_tokens(&sent.dialog) <= budget,
        "{} > {budget}",
        sent_tokens(&sent.dialog)
    );
    // The summary is there, cut after a word and marked.
    let summary = sent.dialog.messages()[1].text();
    assert!(
        summary.starts_with("Summary of the earlier conversation: summary"),
        "{summary}"
    );
    assert!(summary.ends_with("summary…"), "{summary}");
    // The summarizer was asked for no more than the room left.
    let asked = writer
        .last_chat_request()
        .unwrap()
        .params
        .max_tokens
        .unwrap() as usize;
    assert!(
        asked <= budget - sent_tokens(&sent.dialog) + Estimator.count_text(&summary),
        "{asked}"
    );

    // A summary that fits goes in whole.
    writer.push_text("They asked three questions.");
    p.chat(ChatRequest::new(dialog).model("m")).await.unwrap();
    let sent = mock.last_chat_request().unwrap();
    assert_eq!(
        sent.dialog.messages()[1].text(),
        "Summary of the earlier conversation: They asked three questions."
    );
    assert!(sent_tokens(&sent.dialog) <= budget);
}

#[tokio::test]
async fn a_summarizer_never_fails_a_call_that_trimming_alone_handles() {
    // A prompt budget of 300 (a window of 400, 100 for the reply), whose system row and
    // latest question need 284: no room for a summary (75, a quarter of the budget, nor
    // even a short one in the 16 left), but the older turn can be dropped.
    let long_question = format!("the latest question {}", "word ".repeat(215));
    let dialog = Dialog::new()
        .system("be brief")
        .user(format!("an old question {}", "word ".repeat(40)))
        .assistant(format!("an old answer {}", "word ".repeat(40)))
        .user(long_question);
    assert!(sent_tokens(&dialog) > 300);
    let mock = MockDriver::new();
    let alone = Provider::builder(mock.clone())
        .context(window_of_m(400))
        .build();
    alone
        .chat(ChatRequest::new(dialog.clone()).model("m"))
        .await
        .unwrap();
    let trimmed_alone = mock.last_chat_request().unwrap().dialog;
    assert_eq!(trimmed_alone.len(), 2);

    let writer = MockDriver::builder().name("writer").build();
    let p = summarizing(&mock, &writer, 400);
    let mut rx = p.subscribe();
    p.chat(ChatRequest::new(dialog).model("m")).await.unwrap();
    let sent = mock.last_chat_request().unwrap();
    assert_eq!(
        sent.dialog, trimmed_alone,
        "the same trim, without a summary"
    );
    assert!(sent_tokens(&sent.dialog) <= 300);
    assert_eq!(writer.calls(), 0, "no room, so no summary was asked for");
    let summarized = rx.drain().into_iter().find_map(|e| match e.kind {
        EventKind::ContextTrimmed { summarized, .. } => Some(summarized),
        _ => None,
    });
    assert_eq!(summarized, Some(false));
}
