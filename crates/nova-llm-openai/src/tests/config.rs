//! Configuration: `from_env` (through a lookup, since tests must not change the process
//! environment), URL handling, defaults.

use std::collections::HashMap;

use nova_llm_core::{ErrorKind, LlmDriver};

use crate::{DEFAULT_MODEL, OpenAiBuilder, OpenAiDriver};

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn from_env_requires_a_key_only_for_openai_itself() {
    let err = OpenAiBuilder::from_lookup(lookup(&[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(err.to_string().contains("OPENAI_API_KEY"));
    let err = OpenAiBuilder::from_lookup(lookup(&[("OPENAI_API_KEY", "  ")])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);

    let local =
        OpenAiBuilder::from_lookup(lookup(&[("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")]))
            .unwrap()
            .build()
            .unwrap();
    assert!(format!("{local:?}").contains("127.0.0.1:8000/v1/chat/completions"));
    assert!(format!("{local:?}").contains("<none>"));
}

#[test]
fn from_env_reads_every_variable() {
    let b = OpenAiBuilder::from_lookup(lookup(&[
        ("OPENAI_API_KEY", "sk-abc"),
        ("OPENAI_ORG_ID", "org-1"),
        ("OPENAI_PROJECT_ID", "proj-1"),
    ]))
    .unwrap();
    let shown = format!("{b:?}");
    assert!(shown.contains("org-1") && shown.contains("proj-1"));
    assert!(!shown.contains("sk-abc"));
    let d = b.build().unwrap();
    assert_eq!(d.default_model(), DEFAULT_MODEL);
    assert_eq!(d.name(), "openai");
    assert!(d.capabilities().streaming && d.capabilities().completions);
}

#[test]
fn bad_urls_and_headers_are_invalid_requests_not_panics() {
    for url in ["not a url", "ftp://example.com/v1", ""] {
        let err = OpenAiDriver::builder().base_url(url).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{url}");
    }
    let err = OpenAiDriver::builder()
        .header("bad header", "x")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let err = OpenAiDriver::builder()
        .header("x-ok", "bad\nvalue")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[test]
fn the_default_client_builds_with_tls() {
    // https with the bundled roots: building must work on a machine without system certs.
    let d = OpenAiDriver::builder().api_key("sk-x").build().unwrap();
    assert!(format!("{d:?}").contains("https://api.openai.com/v1/chat/completions"));
}
