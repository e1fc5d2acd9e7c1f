//! Configuration: `from_env` (through a lookup, since tests must not change the process
//! environment; the real environment in a child process), URL handling, defaults.

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

/// Set in the child process `from_env_reads_the_process_environment` starts.
const CHILD: &str = "NOVA_OPENAI_FROM_ENV_CHILD";

#[test]
fn from_env_reads_the_process_environment() {
    // The test runs itself again in a child process with the variables set: this process's
    // environment, shared by every test thread, is left alone.
    match std::env::var(CHILD).as_deref() {
        Ok("key") => {
            let d = OpenAiDriver::from_env().unwrap();
            let shown = format!("{d:?}");
            assert!(shown.contains("127.0.0.1:9/v1/chat/completions"), "{shown}");
            assert!(shown.contains("<redacted>") && !shown.contains("sk-from-env"));
            return;
        }
        Ok(_) => {
            let err = OpenAiDriver::from_env().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Authentication);
            return;
        }
        Err(_) => {}
    }
    let run = |mode: &str, vars: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "tests::config::from_env_reads_the_process_environment",
            "--test-threads=1",
        ])
        .env(CHILD, mode);
        for var in [
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "OPENAI_ORG_ID",
            "OPENAI_PROJECT_ID",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(vars.iter().copied());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{mode}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        "key",
        &[
            ("OPENAI_API_KEY", "sk-from-env"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ],
    );
    run("no key", &[]);
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
fn a_named_driver_reports_its_name() {
    // The name events, metrics and fallback chains show: two servers need two names.
    let d = OpenAiDriver::builder()
        .name("local-vllm")
        .base_url("http://127.0.0.1:8000/v1")
        .build()
        .unwrap();
    assert_eq!(d.name(), "local-vllm");
    assert!(format!("{d:?}").contains("local-vllm"));
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
