//! Configuration: the environment, the builder's checks, and no key in `Debug`.

use nova_llm_core::{ErrorKind, LlmDriver};

use crate::{AnthropicBuilder, AnthropicDriver, DEFAULT_MODEL};

#[test]
fn the_environment_gives_the_key_and_the_base_url() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let d = AnthropicBuilder::from_lookup(env(&[
        ("ANTHROPIC_API_KEY", "sk-ant-env-0123456789"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:8080/proxy/"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    let shown = format!("{d:?}");
    assert!(
        shown.contains("http://127.0.0.1:8080/proxy/v1/messages"),
        "{shown}"
    );
    assert!(!shown.contains("sk-ant-env"), "{shown}");
    assert_eq!(d.default_model(), DEFAULT_MODEL);
    assert_eq!(d.name(), "anthropic");
    for missing in [&[][..], &[("ANTHROPIC_API_KEY", "  ")][..]] {
        let err = AnthropicBuilder::from_lookup(env(missing)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert!(err.message().contains("ANTHROPIC_API_KEY"));
    }
}

#[test]
fn the_builder_refuses_what_cannot_be_sent_without_showing_the_key() {
    let secret = "sk-ant-bad\nkey-0123456789";
    for b in [
        AnthropicDriver::builder().base_url("not a url"),
        AnthropicDriver::builder().base_url("ftp://example.com"),
        AnthropicDriver::builder().api_key(secret),
        AnthropicDriver::builder().header("bad header", "x"),
        AnthropicDriver::builder().beta("bad\nflag"),
    ] {
        let shown = format!("{b:?}");
        assert!(!shown.contains("sk-ant-bad"), "{shown}");
        let err = b.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
        assert!(!err.to_string().contains("sk-ant-bad"), "{err}");
    }
    let d = AnthropicDriver::builder()
        .name("claude")
        .default_model("claude-haiku-4-5")
        .default_max_tokens(0)
        .build()
        .unwrap();
    assert_eq!(
        (d.name(), d.default_model()),
        ("claude", "claude-haiku-4-5")
    );
}
