//! Configuration: the environment, the builder's checks, and no key in `Debug`.

use nova_llm_core::{ErrorKind, LlmDriver};

use crate::{DEFAULT_MODEL, GeminiBuilder, GeminiDriver};

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn the_environment_gives_the_key_and_the_base_url() {
    let d = GeminiBuilder::from_lookup(env(&[
        ("GOOGLE_API_KEY", "AIza-google-0123456789"),
        ("GEMINI_API_KEY", "AIza-gemini-0123456789"),
        ("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:8080/proxy/"),
    ]))
    .unwrap();
    let shown = format!("{d:?}");
    assert!(!shown.contains("AIza-"), "{shown}");
    let d = d.build().unwrap();
    let shown = format!("{d:?}");
    assert!(
        shown.contains("http://127.0.0.1:8080/proxy/v1/models"),
        "{shown}"
    );
    assert_eq!((d.name(), d.default_model()), ("gemini", DEFAULT_MODEL));
    // GEMINI_API_KEY first, GOOGLE_API_KEY otherwise; neither is an error.
    assert!(
        GeminiBuilder::from_lookup(env(&[("GOOGLE_API_KEY", "AIza-google-0123456789")])).is_ok()
    );
    let err = GeminiBuilder::from_lookup(env(&[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(err.message().contains("GEMINI_API_KEY"));
}

#[test]
fn the_builder_refuses_what_cannot_be_sent() {
    for b in [
        GeminiDriver::builder().base_url("not a url"),
        GeminiDriver::builder().api_version("v1/../x"),
        GeminiDriver::builder().api_key("AIza-bad\nkey-0123456789"),
        GeminiDriver::builder().header("bad header", "x"),
    ] {
        let err = b.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
        assert!(!err.to_string().contains("AIza-bad"), "{err}");
    }
    let caps = GeminiDriver::builder().build().unwrap().capabilities();
    assert!(caps.streaming && caps.tools && caps.structured_output && caps.images);
    assert!(!caps.completions);
}
