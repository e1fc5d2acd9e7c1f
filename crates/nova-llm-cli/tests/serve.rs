//! `nova serve` as a process: the built-in mock route, a configuration file, and two
//! gateway processes sharing one Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;

use nova_llm_redis::testing::RedisServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// A `nova serve` process and the address it listens on.
struct Served {
    child: Child,
    addr: SocketAddr,
}

async fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nova"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // "nova serve: listening on http://ADDR/v1 (models: ...)"
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("nova serve exited");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep reading the log so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served { child, addr }
}

/// One HTTP/1.1 request; the status and the JSON body.
async fn call(addr: SocketAddr, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let json = answer
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

const HELLO: &str = r#"{"model":"mock","messages":[{"role":"user","content":"hello"}]}"#;

#[tokio::test]
async fn serve_with_no_configuration_answers_on_the_mock_route() {
    let mut s = serve(&[]).await;
    let (status, body) = call(s.addr, "/v1/chat/completions", None, HELLO).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], "f(hello)");
    s.child.kill().await.unwrap();
}

#[tokio::test]
async fn a_bad_configuration_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("nova-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[models]]\nname = \"m\"\ndriver = \"mock\"\nfallback = [\"x\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova"))
        .args(["serve", "--check", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("`x`"), "{err}");
}

#[tokio::test]
async fn two_gateway_processes_on_one_redis_hold_one_keys_limit() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let hash = {
        let out = Command::new(env!("CARGO_BIN_EXE_nova"))
            .args(["serve", "--hash-key", "gw-shared-key"])
            .output()
            .await
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let dir = std::env::temp_dir().join(format!("nova-serve-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            "[[models]]\nname = \"mock\"\ndriver = \"mock\"\n\n\
             [[keys]]\nname = \"shared\"\nsha256 = \"{hash}\"\nrpm = 3\n"
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let url = redis.url();
    let mut a = serve(&["--config", config, "--redis", url]).await;
    let mut b = serve(&["--config", config, "--redis", url]).await;
    let key = Some("gw-shared-key");
    // Three a minute across both processes: two through one, one through the other...
    for addr in [a.addr, b.addr, a.addr] {
        let (status, body) = call(addr, "/v1/chat/completions", key, HELLO).await;
        assert_eq!(status, 200, "{body}");
    }
    // ...and the fourth is refused by whichever it reaches.
    let (status, body) = call(b.addr, "/v1/chat/completions", key, HELLO).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let (status, _) = call(a.addr, "/v1/chat/completions", key, HELLO).await;
    assert_eq!(status, 429);
    a.child.kill().await.unwrap();
    b.child.kill().await.unwrap();
}
