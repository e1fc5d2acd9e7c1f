//! Test helpers: a driver pointed at a server, and a raw HTTP server for cut and stalled
//! streams that wiremock cannot produce.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use wiremock::MockServer;

use crate::OpenAiDriver;

pub(crate) const KEY: &str = "sk-test-SECRET-0123456789";

/// A driver for `base` (`…/v1`) with the test key.
pub(crate) fn driver_for(base: &str) -> OpenAiDriver {
    OpenAiDriver::builder()
        .base_url(base)
        .api_key(KEY)
        .build()
        .unwrap()
}

pub(crate) fn driver(server: &MockServer) -> OpenAiDriver {
    driver_for(&format!("{}/v1", server.uri()))
}

/// The JSON bodies the server received, in order.
pub(crate) async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// An SSE body from JSON chunks, ending with `[DONE]`.
pub(crate) fn sse(chunks: &[Value]) -> String {
    let mut s = String::new();
    for c in chunks {
        s.push_str(&format!("data: {c}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

/// One step of a raw server's reply.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Write these bytes (then flush).
    Write(Vec<u8>),
    /// Wait this long (real time; only used for ordering, never asserted).
    Pause(Duration),
}

/// How a raw server ends its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Close the connection.
    Close,
}

/// A one-connection HTTP server on loopback that sends `head` then `steps`, then ends as
/// told. The receiver reports `true` once the client closed the connection.
pub(crate) fn raw_server(
    head: &str,
    steps: Vec<Step>,
    end: End,
) -> (String, tokio::sync::oneshot::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let head = head.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        sock.set_read_timeout(Some(Duration::from_secs(30))).ok();
        read_request(&mut sock);
        let mut ok = sock.write_all(head.as_bytes()).is_ok();
        for step in steps {
            match step {
                Step::Write(b) => ok &= sock.write_all(&b).and_then(|_| sock.flush()).is_ok(),
                Step::Pause(d) => thread::sleep(d),
            }
        }
        let _ = ok;
        match end {
            End::Close => {
                drop(sock);
                let _ = tx.send(false);
            }
        }
    });
    (format!("http://{addr}/v1"), rx)
}

fn read_request(sock: &mut std::net::TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = sock.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return;
            }
        }
    }
}

/// The response head of an SSE stream without a length (the body ends when the socket
/// closes).
pub(crate) const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\nx-request-id: req_raw\r\n\r\n";

/// A content chunk as OpenAI streams it.
pub(crate) fn text_chunk(text: &str) -> Value {
    serde_json::json!({"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
}
