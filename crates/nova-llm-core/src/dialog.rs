//! Dialogs and the messages (rows) in them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::cache_hint::CacheTtl;
pub use crate::content::ContentPart;
pub use crate::reasoning::ReasoningPart;
pub use crate::tool_call::ToolCall;

/// Who wrote a message.
///
/// Unknown roles sent by some compatible server are kept as [`Role::Other`] instead of
/// failing to parse.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person (or program) talking to the model.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call the assistant asked for.
    Tool,
    /// A role this crate does not know, kept verbatim (for example `developer`).
    Other(String),
}

impl Role {
    /// The role as it appears on the wire (`system`, `user`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Other(s) => s,
        }
    }
}

impl From<String> for Role {
    fn from(s: String) -> Self {
        match s.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => Role::Other(s),
        }
    }
}

impl From<&str> for Role {
    fn from(s: &str) -> Self {
        Role::from(s.to_owned())
    }
}

impl From<Role> for String {
    fn from(r: Role) -> Self {
        match r {
            Role::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a dialog.
///
/// ```
/// use nova_llm_core::{Message, Role};
///
/// let note = Message::user("remember: the user prefers metric units").with_hidden(true);
/// assert_eq!(note.role, Role::User);
/// assert!(note.hidden);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and image parts.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Calls the assistant asked for (assistant rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this row answers (tool rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Whether this tool row reports that the tool failed (services that take it, such as
    /// Anthropic's `is_error`, are told; others see the content only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_error: bool,
    /// A hidden row stays in the history but is never sent to a model.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// Free-form data for the application; never sent to a model.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// A prompt-caching breakpoint after this row, for services that take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_breakpoint: Option<CacheTtl>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Message {
    /// A message with `role` and one text part (no part when `text` is empty).
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        let text = text.into();
        Message {
            role,
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![ContentPart::text(text)]
            },
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
            hidden: false,
            metadata: Map::new(),
            cache_breakpoint: None,
        }
    }

    /// A system row.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text)
    }

    /// A user row.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text)
    }

    /// An assistant row.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text)
    }

    /// A tool row answering the call with id `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        let mut m = Self::new(Role::Tool, content);
        m.tool_call_id = Some(tool_call_id.into());
        m
    }

    /// A tool row saying the call with id `tool_call_id` failed, `content` saying how.
    pub fn tool_error(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        let mut m = Self::tool_result(tool_call_id, content);
        m.is_error = true;
        m
    }

    /// A user row made of several parts (text and images).
    pub fn user_parts(parts: impl IntoIterator<Item = ContentPart>) -> Self {
        let mut m = Self::new(Role::User, "");
        m.content = parts.into_iter().collect();
        m
    }

    /// Adds a content part.
    pub fn with_part(mut self, part: ContentPart) -> Self {
        self.content.push(part);
        self
    }

    /// Adds reasoning (on an assistant row), after any reasoning already there and before
    /// the rest of the content: a model reasons before it answers.
    pub fn with_reasoning(mut self, part: ReasoningPart) -> Self {
        let at = self
            .content
            .iter()
            .position(|p| !matches!(p, ContentPart::Reasoning(_)))
            .unwrap_or(self.content.len());
        self.content.insert(at, ContentPart::Reasoning(part));
        self
    }

    /// Marks a prompt-caching breakpoint after this row. Default: none.
    pub fn with_cache_breakpoint(mut self, ttl: CacheTtl) -> Self {
        self.cache_breakpoint = Some(ttl);
        self
    }

    /// Adds a tool call (on an assistant row).
    pub fn with_tool_call(mut self, call: ToolCall) -> Self {
        self.tool_calls.push(call);
        self
    }

    /// Sets the participant name. Default: none.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Marks the row hidden (kept in history, never sent). Default: `false`.
    pub fn with_hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// Adds a metadata entry. Default: no metadata.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The text parts joined with a newline (images, documents and reasoning are skipped).
    pub fn text(&self) -> String {
        let mut texts = self.content.iter().filter_map(ContentPart::as_text);
        let Some(first) = texts.next() else {
            return String::new();
        };
        let mut out = first.to_owned();
        for t in texts {
            out.push('\n');
            out.push_str(t);
        }
        out
    }

    /// The reasoning texts joined with a newline; `None` when the row has no reasoning
    /// text.
    pub fn reasoning(&self) -> Option<String> {
        let mut texts = self
            .content
            .iter()
            .filter_map(ContentPart::as_reasoning)
            .map(|r| r.text.as_str())
            .filter(|t| !t.is_empty());
        let mut out = texts.next()?.to_owned();
        for t in texts {
            out.push('\n');
            out.push_str(t);
        }
        Some(out)
    }

    /// Whether the row has an image part.
    pub fn has_image(&self) -> bool {
        self.content
            .iter()
            .any(|p| matches!(p, ContentPart::Image { .. }))
    }
}

/// An ordered conversation, built fluently.
///
/// ```
/// use nova_llm_core::{Dialog, Message};
///
/// let dialog = Dialog::new()
///     .system("You are terse.")
///     .user("What is 2 + 2?")
///     .message(Message::assistant("note to self").with_hidden(true));
/// assert_eq!(dialog.len(), 3);
/// assert_eq!(dialog.visible().count(), 2); // hidden rows are never sent
/// assert_eq!(dialog.last_visible().unwrap().text(), "What is 2 + 2?");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Dialog {
    messages: Vec<Message>,
}

impl Dialog {
    /// An empty dialog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a system row.
    pub fn system(self, text: impl Into<String>) -> Self {
        self.message(Message::system(text))
    }

    /// Appends a user row.
    pub fn user(self, text: impl Into<String>) -> Self {
        self.message(Message::user(text))
    }

    /// Appends an assistant row.
    pub fn assistant(self, text: impl Into<String>) -> Self {
        self.message(Message::assistant(text))
    }

    /// Appends a tool-result row.
    pub fn tool_result(self, tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        self.message(Message::tool_result(tool_call_id, content))
    }

    /// Appends any row.
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Appends a row in place.
    pub fn push(&mut self, message: Message) {
        self.messages.push(message);
    }

    /// All rows, hidden ones included.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// All rows, mutably.
    pub fn messages_mut(&mut self) -> &mut Vec<Message> {
        &mut self.messages
    }

    /// The rows a model is sent: every row that is not hidden.
    pub fn visible(&self) -> impl DoubleEndedIterator<Item = &Message> + '_ {
        self.messages.iter().filter(|m| !m.hidden)
    }

    /// The last row a model would see.
    pub fn last_visible(&self) -> Option<&Message> {
        self.visible().next_back()
    }

    /// Number of rows, hidden ones included.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are no rows at all.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The rows, consuming the dialog.
    pub fn into_messages(self) -> Vec<Message> {
        self.messages
    }
}

impl From<Vec<Message>> for Dialog {
    fn from(messages: Vec<Message>) -> Self {
        Dialog { messages }
    }
}

impl FromIterator<Message> for Dialog {
    fn from_iter<I: IntoIterator<Item = Message>>(iter: I) -> Self {
        Dialog {
            messages: iter.into_iter().collect(),
        }
    }
}

impl Extend<Message> for Dialog {
    fn extend<I: IntoIterator<Item = Message>>(&mut self, iter: I) {
        self.messages.extend(iter);
    }
}

impl<'a> IntoIterator for &'a Dialog {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.messages.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_appends_rows_in_order() {
        let d = Dialog::new()
            .system("sys")
            .user("hi")
            .assistant("hello")
            .tool_result("call_1", "42");
        let roles: Vec<_> = d.messages().iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::Tool]
        );
        assert_eq!(d.messages()[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(d.messages()[3].text(), "42");
        assert!(!d.messages()[3].is_error);
        let failed = Message::tool_error("call_2", "timed out");
        assert!(failed.is_error && failed.role == Role::Tool);
        assert_eq!(failed.tool_call_id.as_deref(), Some("call_2"));
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["is_error"], true);
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), failed);
    }

    #[test]
    fn a_dialog_is_built_grown_and_taken_apart_like_a_vec() {
        let rows = vec![Message::user("a"), Message::assistant("b")];
        let d = Dialog::from(rows.clone());
        assert_eq!(d.messages(), rows.as_slice());
        let collected: Dialog = rows.iter().cloned().collect();
        assert_eq!(collected, d);
        let mut grown = Dialog::new();
        assert!(grown.is_empty());
        grown.push(Message::user("a"));
        assert!(!grown.is_empty());
        grown.extend([Message::assistant("b")]);
        assert_eq!(grown, d);
        grown.messages_mut().push(Message::user("c"));
        let texts: Vec<String> = (&grown).into_iter().map(Message::text).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!(grown.into_messages()[2].text(), "c");
    }

    #[test]
    fn hidden_rows_are_kept_but_not_visible() {
        let d = Dialog::new()
            .user("first")
            .message(Message::user("secret").with_hidden(true));
        assert_eq!(d.len(), 2);
        let visible: Vec<_> = d.visible().map(Message::text).collect();
        assert_eq!(visible, ["first"]);
        assert_eq!(
            d.last_visible().map(Message::text).as_deref(),
            Some("first")
        );
        let all_hidden = Dialog::new().message(Message::user("x").with_hidden(true));
        assert!(all_hidden.last_visible().is_none());
    }

    #[test]
    fn multi_part_text_is_joined_with_newlines_and_images_skipped() {
        let m = Message::user_parts([
            ContentPart::text("look at this"),
            ContentPart::image_url("https://example.com/cat.png"),
            ContentPart::text("what is it?"),
        ]);
        assert_eq!(m.text(), "look at this\nwhat is it?");
        assert!(m.has_image());
        assert!(!Message::user("words only").has_image());
        assert_eq!(Message::assistant("").text(), "");
        assert!(Message::assistant("").content.is_empty());
    }

    #[test]
    fn reasoning_documents_and_breakpoints_round_trip_and_stay_out_of_the_text() {
        let row = Message::assistant("Four.")
            .with_reasoning(ReasoningPart::new("2+2").with_signature("sig", "anthropic"))
            .with_reasoning(ReasoningPart::redacted("opaque", "anthropic"))
            .with_cache_breakpoint(CacheTtl::Long);
        // Reasoning goes before the answer, in the order it was added.
        assert!(matches!(&row.content[0], ContentPart::Reasoning(r) if r.text == "2+2"));
        assert!(matches!(&row.content[1], ContentPart::Reasoning(r) if r.redacted.is_some()));
        assert_eq!(row.content[2].as_text(), Some("Four."));
        assert_eq!(row.text(), "Four.");
        assert_eq!(row.reasoning().as_deref(), Some("2+2"));
        assert_eq!(Message::assistant("x").reasoning(), None);
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["content"][0]["type"], "reasoning");
        assert_eq!(json["content"][0]["signature"], "sig");
        assert_eq!(json["cache_breakpoint"], "long");
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), row);

        let pdf = Message::user_parts([
            ContentPart::pdf_base64("JVBERi0x"),
            ContentPart::text("Summarize it."),
        ]);
        assert_eq!(
            pdf.content[0],
            ContentPart::Document {
                url: "data:application/pdf;base64,JVBERi0x".into(),
                title: None
            }
        );
        assert_eq!(pdf.text(), "Summarize it.");
        let json = serde_json::to_value(&pdf).unwrap();
        assert_eq!(json["content"][0]["type"], "document");
        assert!(json.get("cache_breakpoint").is_none());
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), pdf);
    }

    #[test]
    fn unknown_roles_round_trip_verbatim() {
        let r: Role = serde_json::from_str("\"developer\"").unwrap();
        assert_eq!(r, Role::Other("developer".into()));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"developer\"");
        let r: Role = serde_json::from_str("\"assistant\"").unwrap();
        assert_eq!(r, Role::Assistant);
        assert_eq!(Role::Tool.to_string(), "tool");
        for role in [Role::System, Role::User, Role::Assistant, Role::Tool] {
            assert_eq!(Role::from(role.to_string()), role);
        }
    }

    #[test]
    fn message_serde_round_trip_skips_empty_fields() {
        let m = Message::assistant("calling")
            .with_tool_call(ToolCall::new("c1", "lookup", r#"{"q":"x"}"#))
            .with_metadata("trace", 7)
            .with_name("bot");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["role"], "assistant");
        assert_eq!(json["content"][0]["type"], "text");
        assert!(json.get("hidden").is_none());
        assert!(json.get("tool_call_id").is_none());
        let back: Message = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);

        let d = Dialog::new()
            .user("a")
            .message(Message::user("b").with_hidden(true));
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.starts_with('['));
        assert_eq!(serde_json::from_str::<Dialog>(&text).unwrap(), d);
    }
}
