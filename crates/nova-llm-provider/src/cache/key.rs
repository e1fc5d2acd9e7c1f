//! The cache key: SHA-256 over a canonical encoding of everything that changes the answer,
//! fed to the hasher piece by piece (no copy of the request is built).

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use nova_llm_core::{ChatRequest, ContentPart, Message, ModelParams, ResponseFormat, Role, Tool};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::call::Operation;

/// The version of the key encoding, part of every key: a change of encoding changes every
/// key instead of mixing two encodings in one store.
pub const KEY_VERSION: &str = "v1";

/// A cache key: `v1:` and 64 hex digits of SHA-256.
///
/// It covers the driver's name and the model, the kind of call (chat or plain completion),
/// every visible row (role, every content part, reasoning included, name, tool calls,
/// tool-call id, whether a tool failed), the model parameters, the response format, the tools and tool choice,
/// parallel tool calls, the reasoning control and the provider extras. Object keys inside
/// JSON values (schemas, extras) are sorted, so field order never matters. Hidden rows, row
/// metadata, prompt-caching breakpoints (they never change the answer), request ids and
/// tags are not part of it, and neither is whether the call streams (a streamed reply can
/// answer a plain call).
///
/// ```
/// use nova_llm_core::{ChatRequest, Dialog, Message};
/// use nova_llm_provider::cache::CacheKey;
/// use nova_llm_provider::Operation;
///
/// let a = ChatRequest::new(Dialog::new().user("hi")).model("gpt-4o-mini");
/// let note = Message::user("a note for the app, never sent").with_hidden(true);
/// let b = ChatRequest::new(Dialog::new().message(note).user("hi")).model("gpt-4o-mini");
/// let key = |r: &ChatRequest| CacheKey::new("openai", Operation::Chat, r);
/// assert_eq!(key(&a), key(&b));
/// assert_ne!(key(&a), key(&a.clone().temperature(0.5)));
/// assert!(key(&a).as_str().starts_with("v1:"));
/// ```
///
/// Cloning is cheap (the text is shared): a call's key goes into the map of calls in
/// flight and into the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CacheKey(Arc<str>);

/// Hashes the key's last 16 characters only: they are hex digits of a SHA-256, as evenly
/// spread as the whole, and maps keyed by it (the in-flight calls, the memory store) hash
/// every key several times per call. Equal keys have equal tails, as `Hash` requires.
impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let bytes = self.0.as_bytes();
        state.write(&bytes[bytes.len().saturating_sub(16)..]);
    }
}

impl CacheKey {
    /// The key of `request` sent to the driver named `driver` through `operation`.
    pub fn new(driver: &str, operation: Operation, request: &ChatRequest) -> Self {
        let mut h = KeyHasher(Sha256::new());
        h.str(KEY_VERSION);
        h.str(driver);
        h.str(request.model.as_deref().unwrap_or(""));
        h.tag(match operation {
            Operation::Chat | Operation::ChatStream => b'c',
            Operation::Completion | Operation::CompletionStream => b'p',
        });
        let rows = request.dialog.visible();
        for m in rows {
            h.message(m);
        }
        h.tag(b'P');
        if request.params == ModelParams::default() {
            h.json(default_json::<ModelParams>(&DEFAULT_PARAMS));
        } else {
            h.serde(&request.params);
        }
        h.response_format(&request.response_format);
        h.tag(b'T');
        h.len(request.tools.len());
        for t in &request.tools {
            h.tool(t);
        }
        h.tag(b'C');
        match &request.tool_choice {
            None => h.json(b"null"),
            Some(choice) => h.serde(choice),
        }
        h.json(match request.parallel_tool_calls {
            None => b"null",
            Some(true) => b"true",
            Some(false) => b"false",
        });
        // Only when set, so that the keys of requests without it stay what they were.
        if let Some(r) = &request.reasoning {
            h.tag(b'R');
            h.serde(r);
        }
        h.tag(b'X');
        h.len(request.extras.len());
        h.sorted_map(&request.extras);
        let digest = h.0.finalize();
        // Written on the stack, then copied once into the shared text.
        let mut text = [0_u8; KEY_LEN];
        text[..KEY_VERSION.len()].copy_from_slice(KEY_VERSION.as_bytes());
        text[KEY_VERSION.len()] = b':';
        for (i, b) in digest.iter().enumerate() {
            let at = KEY_VERSION.len() + 1 + 2 * i;
            text[at] = HEX[usize::from(b >> 4)];
            text[at + 1] = HEX[usize::from(b & 0xf)];
        }
        // ASCII only (the version, a colon and hex digits), so always valid.
        CacheKey(Arc::from(std::str::from_utf8(&text).unwrap_or_default()))
    }

    /// Takes a key read back from a store.
    pub fn from_string(key: String) -> Self {
        CacheKey(Arc::from(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `v1:` and 64 hex digits.
const KEY_LEN: usize = KEY_VERSION.len() + 1 + 64;

/// The JSON of the default model parameters, made once: most requests set none.
static DEFAULT_PARAMS: OnceLock<Vec<u8>> = OnceLock::new();
/// The JSON of the default (text) response format, made once.
static TEXT_FORMAT: OnceLock<Vec<u8>> = OnceLock::new();

/// The JSON of `T::default()`, made the first time it is asked for.
fn default_json<T: Default + Serialize>(cell: &'static OnceLock<Vec<u8>>) -> &'static [u8] {
    cell.get_or_init(|| serde_json::to_vec(&T::default()).unwrap_or_default())
}

/// Writes length-prefixed pieces into the hash, so no two different requests encode alike.
struct KeyHasher(Sha256);

impl Write for KeyHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl KeyHasher {
    fn tag(&mut self, t: u8) {
        self.0.update([t]);
    }

    fn len(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.update(s.as_bytes());
    }

    /// Values without maps (so their JSON is canonical): serialized straight into the hash.
    fn serde<T: Serialize>(&mut self, value: &T) {
        self.tag(b'j');
        // Writing into a hasher cannot fail, and these types always serialize.
        let _ = serde_json::to_writer(&mut *self, value);
        self.tag(b';');
    }

    /// What [`serde`](Self::serde) writes for a value whose JSON is `json`.
    fn json(&mut self, json: &[u8]) {
        self.tag(b'j');
        self.0.update(json);
        self.tag(b';');
    }

    fn message(&mut self, m: &Message) {
        self.tag(b'M');
        match &m.role {
            // The known roles' JSON is their name in quotes; others go through serde, which
            // escapes them.
            Role::System => self.json(br#""system""#),
            Role::User => self.json(br#""user""#),
            Role::Assistant => self.json(br#""assistant""#),
            Role::Tool => self.json(br#""tool""#),
            other => self.serde(other),
        }
        self.len(m.content.len());
        for part in &m.content {
            match part {
                ContentPart::Text { text } => {
                    self.tag(b't');
                    self.str(text);
                }
                other => self.serde(other),
            }
        }
        match &m.name {
            None => self.json(b"null"),
            Some(name) => self.serde(name),
        }
        if m.tool_calls.is_empty() {
            self.json(b"[]");
        } else {
            self.serde(&m.tool_calls);
        }
        match &m.tool_call_id {
            None => self.json(b"null"),
            Some(id) => self.serde(id),
        }
        // Only when set, so that the keys of other rows stay what they were.
        if m.is_error {
            self.tag(b'E');
        }
    }

    fn response_format(&mut self, f: &ResponseFormat) {
        self.tag(b'F');
        match f {
            ResponseFormat::JsonSchema(s) => {
                self.tag(b's');
                self.str(&s.name);
                self.serde(&s.strict);
                self.serde(&s.description);
                self.value(&s.schema);
            }
            ResponseFormat::Text => self.json(default_json::<ResponseFormat>(&TEXT_FORMAT)),
            other => self.serde(other),
        }
    }

    fn tool(&mut self, t: &Tool) {
        self.str(&t.name);
        self.serde(&t.description);
        self.serde(&t.strict);
        self.value(&t.parameters);
    }

    fn sorted_map(&mut self, map: &serde_json::Map<String, Value>) {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in entries {
            self.str(k);
            self.value(v);
        }
    }

    /// A JSON value with object keys sorted.
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.tag(b'n'),
            Value::Bool(b) => self.tag(if *b { b'1' } else { b'0' }),
            Value::Number(n) => {
                self.tag(b'#');
                self.str(&n.to_string());
            }
            Value::String(s) => {
                self.tag(b'"');
                self.str(s);
            }
            Value::Array(items) => {
                self.tag(b'[');
                self.len(items.len());
                for i in items {
                    self.value(i);
                }
            }
            Value::Object(map) => {
                self.tag(b'{');
                self.len(map.len());
                self.sorted_map(map);
            }
        }
    }
}
