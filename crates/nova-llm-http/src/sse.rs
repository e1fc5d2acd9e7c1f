//! An incremental Server-Sent Events parser that survives what real servers send.
//!
//! Bytes may arrive split anywhere (inside a line, inside a UTF-8 character, between the CR
//! and LF of a CRLF). Lines end with LF, CRLF or CR; `:` lines are comments (keep-alives);
//! `data:` with or without a space; several `data:` lines join with `\n`; events with no
//! data (`id:`/`retry:` only) produce nothing. A line, or an event's joined data, longer
//! than the limit is an error, so a hostile or broken server cannot make the parser grow
//! without bound: what the parser holds depends on the largest event, never on the length
//! of the stream (see [`SseParser::buffered_bytes`]).

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (for example `error`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// A line, or the data of one event, exceeded the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes.
    pub limit: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an event stream line or event is longer than {} bytes",
            self.limit
        )
    }
}

impl std::error::Error for LineTooLong {}

/// The incremental parser. Feed it bytes with [`push`](SseParser::push) and call
/// [`finish`](SseParser::finish) at the end of input.
#[derive(Debug, Clone)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    /// The previous chunk ended with CR: an LF at the start of the next one is its pair.
    skip_lf: bool,
    max_line: usize,
}

impl SseParser {
    /// A parser that rejects lines, and events whose joined data is, longer than `max_line`
    /// bytes.
    pub fn new(max_line: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            skip_lf: false,
            max_line,
        }
    }

    /// Parses `bytes`, appending every completed event to `out`.
    ///
    /// # Errors
    /// [`LineTooLong`] when a line or an event exceeds the limit; the parser should then be
    /// dropped.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        // A vectorised search: a stream's bytes are almost all inside lines.
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', bytes) {
            let (head, rest) = bytes.split_at(pos);
            let is_cr = rest[0] == b'\r';
            let mut rest = &rest[1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                self.check(head.len())?;
                self.line_done(head, out)?;
            } else {
                self.check(self.line.len() + head.len())?;
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let done = self.line_done(&line, out);
                line.clear();
                self.line = line;
                done?;
            }
            bytes = rest;
        }
        if !bytes.is_empty() {
            self.check(self.line.len() + bytes.len())?;
            self.line.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Ends the input: a last line without its terminator is processed, and an event still
    /// open is dispatched (lenient: some servers omit the final blank line).
    ///
    /// # Errors
    /// [`LineTooLong`] when that last line makes the open event exceed the limit.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    /// The bytes the parser's buffers hold right now (capacity, not length). It is bounded
    /// by the largest line and event seen, whatever the length of the stream: a test feeds a
    /// long stream and checks it stays flat.
    pub fn buffered_bytes(&self) -> usize {
        self.line.capacity()
            + self.data.capacity()
            + self.event.as_ref().map_or(0, String::capacity)
            + self.id.as_ref().map_or(0, String::capacity)
    }

    fn check(&self, len: usize) -> Result<(), LineTooLong> {
        if len > self.max_line {
            Err(LineTooLong {
                limit: self.max_line,
            })
        } else {
            Ok(())
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &line[line.len()..]),
        };
        match field {
            b"data" => {
                self.check(self.data.len() + usize::from(self.has_data) + value.len())?;
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                // Checked first: `from_utf8` has a fast path for ASCII that the lossy
                // conversion lacks (it was a tenth of the time spent per event).
                match std::str::from_utf8(value) {
                    Ok(text) => self.data.push_str(text),
                    Err(_) => self.data.push_str(&String::from_utf8_lossy(value)),
                }
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // `retry:` and unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                id: self.id.take(),
            });
        } else {
            self.event = None;
            self.id = None;
        }
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_split_across_pushes_comes_out_whole() {
        let mut p = super::SseParser::new(1 << 20);
        let mut out = Vec::new();
        p.push(b"data: {\"a\"", &mut out).unwrap();
        assert!(out.is_empty());
        p.push(b": 1}\r\n\r\n: keep-alive\n\ndata:[DONE]\n\n", &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data, "{\"a\": 1}");
        assert_eq!(out[1].data, "[DONE]");
    }

    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 16);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    fn datas(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn lf_crlf_and_cr_line_endings_all_work() {
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!("data: a{sep}{sep}data: b{sep}{sep}");
            assert_eq!(
                datas(&parse_chunks(&[text.as_bytes()])),
                ["a", "b"],
                "{sep:?}"
            );
        }
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_end() {
        let events = parse_chunks(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(datas(&events), ["a", "b"]);
    }

    #[test]
    fn a_utf8_character_split_between_chunks_survives() {
        let text = "data: héllo wörld 😀\n\n".as_bytes();
        for cut in 0..text.len() {
            let events = parse_chunks(&[&text[..cut], &text[cut..]]);
            assert_eq!(datas(&events), ["héllo wörld 😀"], "cut at {cut}");
        }
    }

    #[test]
    fn comments_and_keep_alives_are_skipped() {
        let events = parse_chunks(&[b": ping\n\n:\n\ndata: x\n: mid-event comment\n\n"]);
        assert_eq!(datas(&events), ["x"]);
    }

    #[test]
    fn data_with_or_without_a_space_and_multi_line_data() {
        let events =
            parse_chunks(&[b"data:no-space\n\ndata:  two spaces\n\ndata: l1\ndata: l2\ndata\n\n"]);
        assert_eq!(datas(&events), ["no-space", " two spaces", "l1\nl2\n"]);
    }

    #[test]
    fn id_and_retry_only_events_produce_nothing() {
        let events = parse_chunks(&[b"retry: 1000\n\nid: 7\n\nevent: ping\n\ndata: x\nid: 9\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id.as_deref(), Some("9"));
        assert_eq!(events[0].event, None, "an event type without data is reset");
    }

    #[test]
    fn event_names_are_kept() {
        let events = parse_chunks(&[b"event: error\ndata: {\"error\": {}}\n\n"]);
        assert_eq!(events[0].event.as_deref(), Some("error"));
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_still_dispatched() {
        let events = parse_chunks(&[b"data: a\n\ndata: [DONE]"]);
        assert_eq!(datas(&events), ["a", "[DONE]"]);
    }

    #[test]
    fn overlong_lines_are_an_error() {
        let mut p = SseParser::new(8);
        let mut out = Vec::new();
        assert!(p.push(b"data: 12", &mut out).is_ok());
        let err = p.push(b"345", &mut out).unwrap_err();
        assert_eq!(err.limit, 8);
        assert!(err.to_string().contains("8 bytes"));
        let mut p = SseParser::new(8);
        assert!(p.push(b"data: 123456789\n", &mut out).is_err());
    }

    #[test]
    fn the_limit_applies_to_an_events_joined_data_too() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p.push(b"data: 0123456\ndata: 01234567\n", &mut out).is_ok());
        let err = p.push(b"data: 0\n", &mut out).unwrap_err();
        assert_eq!(err.limit, 16);
        let mut p = SseParser::new(16);
        p.push(b"data: 0123456\ndata: 01234567", &mut out).unwrap();
        assert!(p.finish(&mut out).is_ok());
        assert_eq!(out[0].data, "0123456\n01234567");
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let text =
            b"data: {\"a\":1}\r\n\r\n: ka\n\nevent: x\ndata: l1\rdata: l2\r\rdata: \xc3\xa9\n\n";
        let whole = parse_chunks(&[text]);
        assert_eq!(whole.len(), 3);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..500 {
            let mut chunks = Vec::new();
            let mut start = 0;
            while start < text.len() {
                let end = (start + rng.usize(0..=6)).min(text.len());
                chunks.push(&text[start..end]);
                start = end;
            }
            assert_eq!(parse_chunks(&chunks), whole);
        }
    }
}
