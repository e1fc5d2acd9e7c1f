//! The loopback HTTP/1.1 server a service double answers through: one request per
//! connection, the arranged reply written step by step, and what the client did noted
//! (the requests it sent, whether it hung up before the end, how much it let be written).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::wire::{Step, WireReply};

/// A request the double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// `POST`, `GET`, ...
    pub(crate) method: String,
    /// The path and query.
    pub(crate) target: String,
    /// The headers, names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

/// The largest request the double reads.
const MAX_REQUEST: usize = 8 << 20;

#[derive(Default)]
struct State {
    next: Option<WireReply>,
    requests: Vec<Recorded>,
    /// Connections the client closed before the reply ended.
    hung_up: usize,
    /// Bytes of the last reply's body written before it ended or the client left.
    written: usize,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state());
        self.changed.notify_waiters();
    }
}

/// The running server. Dropping it stops accepting connections.
pub(crate) struct Server {
    url: String,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    pub(crate) async fn start() -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&serving)));
            }
        });
        Ok(Server {
            url,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`, with no path.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The reply to the next request.
    pub(crate) fn arrange(&self, reply: WireReply) {
        self.shared.update(|s| {
            s.next = Some(reply);
            s.written = 0;
        });
    }

    /// Makes the arranged reply send its head, then nothing until the client hangs up.
    pub(crate) fn stall_next(&self) {
        self.shared.update(|s| {
            if let Some(reply) = s.next.as_mut() {
                reply.body.insert(0, Step::Stall);
            }
        });
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.state().requests.clone()
    }

    pub(crate) fn hung_up(&self) -> usize {
        self.shared.state().hung_up
    }

    pub(crate) fn written(&self) -> usize {
        self.shared.state().written
    }

    /// Waits until `check` holds (checked at every change), at most `limit`; whether it
    /// held. A bound on waiting for what must happen, not a measurement.
    pub(crate) async fn until(&self, limit: Duration, check: impl Fn(&Server) -> bool) -> bool {
        let wait = async {
            loop {
                // Listening before looking, so that no change slips in between.
                let mut changed = std::pin::pin!(self.shared.changed.notified());
                changed.as_mut().enable();
                if check(self) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// One connection: read the request, write the arranged reply.
async fn serve(mut socket: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let mut reply = None;
    shared.update(|s| {
        s.requests.push(request);
        reply = s.next.take();
    });
    let reply = reply.unwrap_or_else(|| {
        WireReply::whole(500, "text/plain", "the conformance kit arranged no reply")
    });
    let hung_up = write_reply(&mut socket, &reply, &shared).await;
    if hung_up {
        shared.update(|s| s.hung_up += 1);
    }
}

/// Writes `reply`; whether the client hung up before it ended.
async fn write_reply(socket: &mut TcpStream, reply: &WireReply, shared: &Shared) -> bool {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.chunked {
        head.push_str("transfer-encoding: chunked\r\n");
    } else {
        let len: usize = reply
            .body
            .iter()
            .map(|s| match s {
                Step::Bytes(b) => b.len(),
                _ => 0,
            })
            .sum();
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    if socket.write_all(head.as_bytes()).await.is_err() {
        return true;
    }
    for step in &reply.body {
        match step {
            Step::Bytes(bytes) => {
                let sent = if reply.chunked {
                    write_chunk(socket, bytes).await
                } else {
                    socket.write_all(bytes).await
                };
                if sent.is_err() {
                    return true;
                }
                shared.update(|s| s.written += bytes.len());
            }
            Step::Pause(d) => tokio::time::sleep(*d).await,
            Step::Stall => return hang_up_seen(socket).await,
            Step::Cut => return false,
        }
    }
    if reply.chunked && socket.write_all(b"0\r\n\r\n").await.is_err() {
        return true;
    }
    let _ = socket.flush().await;
    false
}

async fn write_chunk(socket: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    socket
        .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
        .await?;
    socket.write_all(bytes).await?;
    socket.write_all(b"\r\n").await?;
    socket.flush().await
}

/// Waits for the client to close the connection; `true` once it did.
async fn hang_up_seen(socket: &mut TcpStream) -> bool {
    let mut buf = [0_u8; 512];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

/// Reads one request: its head, then a body of its `content-length`.
async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let mut data = Vec::new();
    let mut buf = [0_u8; 8192];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || data.len() > MAX_REQUEST {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    let mut body = data.split_off(head_end + 4);
    while body.len() < len {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(len);
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}
