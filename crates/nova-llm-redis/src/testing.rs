//! A real Redis for tests: the one at `REDIS_URL`, or a `redis-server` started on a free
//! loopback port and stopped when dropped.
//!
//! ```no_run
//! use nova_llm_redis::testing::RedisServer;
//!
//! let Some(server) = RedisServer::start() else {
//!     return; // said loudly on stderr; under CI=true it panics instead
//! };
//! let url = server.url();
//! # let _ = url;
//! ```

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The ports this process has handed out. A stopped server's port is free again as far as
/// the OS knows, and another test of the same binary starting a server could get it: the
/// stopped server's clients would then reach the wrong Redis. So no port is given twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port this process has not handed out before.
fn fresh_port() -> Option<u16> {
    let mut taken = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        if taken.insert(port) {
            return Some(port);
        }
    }
    None
}

/// A Redis to test against.
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    port: Option<u16>,
    child: Option<Child>,
}

impl RedisServer {
    /// `REDIS_URL` if set; otherwise a new `redis-server` on a free port when one is on the
    /// PATH. `None` (after saying so on stderr) when neither; under `CI=true` that is a
    /// panic, so CI never skips these tests silently.
    pub fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Some(RedisServer {
                url,
                port: None,
                child: None,
            });
        }
        let port = fresh_port()?;
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}/"),
            port: Some(port),
            child: None,
        };
        if server.spawn() {
            Some(server)
        } else {
            let msg = "SKIPPED: no Redis (set REDIS_URL, or put redis-server on the PATH: \
                       apt-get install redis-server)";
            assert!(
                std::env::var("CI").is_err(),
                "{msg}; CI must run these tests"
            );
            let _ = writeln!(std::io::stderr(), "\n*** {msg} ***\n");
            None
        }
    }

    /// Starts `redis-server` on this harness's port; whether it answers.
    fn spawn(&mut self) -> bool {
        let Some(port) = self.port else {
            return false;
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (for failure tests); [`restart`](Self::restart) brings it back on
    /// the same port. No-op for a `REDIS_URL` server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port; whether it answers.
    pub fn restart(&mut self) -> bool {
        self.stop();
        self.spawn()
    }

    /// Whether this harness started the server (so it can stop and restart it).
    pub fn is_owned(&self) -> bool {
        self.port.is_some()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis answers PING on `port`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0_u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_server_answers_and_is_gone_once_dropped() {
        let Some(server) = RedisServer::start() else {
            assert!(std::env::var("CI").is_err(), "CI must have a Redis");
            return;
        };
        let from_env = std::env::var("REDIS_URL").is_ok();
        assert_eq!(server.is_owned(), !from_env);
        let Some(port) = server.port else {
            return; // a REDIS_URL server is not ours to stop
        };
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
        assert!(ping(port));
        drop(server);
        assert!(!ping(port), "the server outlived its harness");
    }
}
