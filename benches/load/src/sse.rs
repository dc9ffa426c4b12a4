//! Incremental decoders for what an SSE response body carries: HTTP/1.1 chunked transfer
//! coding and the `text/event-stream` format.

/// The body's transfer coding broke the HTTP/1.1 grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError;

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed chunked transfer coding")
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

/// Decodes `Transfer-Encoding: chunked` incrementally, whatever the read boundaries.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }
}

impl ChunkedDecoder {
    /// Whether the last chunk (size 0) and its trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Feeds raw body bytes; passes the decoded payload to `out`, in order.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<(), ChunkError> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(end) = memchr::memchr(b'\n', input) else {
                        if self.line.len() + input.len() > 1024 {
                            return Err(ChunkError);
                        }
                        self.line.extend_from_slice(input);
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..end]);
                    input = &input[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                    } else {
                        let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                        let digits = std::str::from_utf8(digits).map_err(|_| ChunkError)?.trim();
                        let size = usize::from_str_radix(digits, 16).map_err(|_| ChunkError)?;
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    self.line.clear();
                }
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    // The CRLF after a chunk's data.
                    match input[0] {
                        b'\r' => input = &input[1..],
                        b'\n' => {
                            input = &input[1..];
                            self.state = ChunkState::Size;
                        }
                        _ => return Err(ChunkError),
                    }
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

/// One dispatched SSE frame: the fields it set, up to its blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The `id:` field, if the frame had one.
    pub id: Option<&'a [u8]>,
    /// The `data:` lines joined with `\n`, if the frame had any.
    pub data: Option<&'a [u8]>,
}

/// Parses `text/event-stream` incrementally, whatever the read boundaries.
///
/// Lines end in LF (a CR before it is dropped). Comments (`:` lines, such as heartbeats) and
/// fields other than `id` and `data` are skipped; a frame with neither is not dispatched.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    id: Vec<u8>,
    has_id: bool,
    comments: u64,
}

impl SseParser {
    /// Comment lines seen so far (heartbeats).
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Feeds body bytes; calls `on_frame` for every complete frame, in order.
    pub fn feed(&mut self, mut input: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        while let Some(end) = memchr::memchr(b'\n', input) {
            if self.line.is_empty() {
                self.line_done(&input[..end], on_frame);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..end]);
                self.line_done(&line, on_frame);
                line.clear();
                self.line = line;
            }
            input = &input[end + 1..];
        }
        self.line.extend_from_slice(input);
    }

    fn line_done(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data || self.has_id {
                on_frame(Frame {
                    id: self.has_id.then_some(&self.id[..]),
                    data: self.has_data.then_some(&self.data[..]),
                });
            }
            self.data.clear();
            self.has_data = false;
            self.has_id = false;
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.extend_from_slice(value);
                self.has_id = true;
            }
            _ => {}
        }
    }
}

/// The sequence number of an event id: the digits after its last `-` (`7f3a9c-42` is 42, `42`
/// is 42).
pub fn seq_of(id: &[u8]) -> Option<u64> {
    let digits = match memchr::memrchr(b'-', id) {
        Some(dash) => &id[dash + 1..],
        None => id,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The `"ts"` field of an event's JSON (publish time, unix microseconds), found without
/// parsing the whole event.
pub fn ts_of(data: &[u8]) -> Option<u64> {
    number_field(data, b"\"ts\":")
}

/// The `"seq"` field of an event's JSON: the generator's per-session sequence number of an
/// event it published (1, 2, 3, ... in each session), found without parsing the whole event.
pub fn payload_seq_of(data: &[u8]) -> Option<u64> {
    number_field(data, b"\"seq\":")
}

/// The `"n"` field of an event's JSON: in events a server publishes in-process
/// (`--self-publish`), its count of events published so far over every session (1, 2, 3,
/// ...), found without parsing the whole event.
pub fn count_of(data: &[u8]) -> Option<u64> {
    number_field(data, b"\"n\":")
}

/// The unsigned integer after the first occurrence of `key` (a quoted name and its colon).
fn number_field(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, key)? + key.len();
    leading_unsigned(&data[at..])
}

/// The unsigned integer at the start of `rest`, after any whitespace.
pub(crate) fn leading_unsigned(rest: &[u8]) -> Option<u64> {
    let digits = rest.trim_ascii_start();
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    Some(
        digits[..len]
            .iter()
            .fold(0, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parser: &mut SseParser, input: &[u8]) -> Vec<(Option<String>, Option<String>)> {
        let mut out = Vec::new();
        parser.feed(input, &mut |f: Frame<'_>| {
            out.push((
                f.id.map(|b| String::from_utf8_lossy(b).into_owned()),
                f.data.map(|b| String::from_utf8_lossy(b).into_owned()),
            ))
        });
        out
    }

    fn owned(id: Option<&str>, data: Option<&str>) -> (Option<String>, Option<String>) {
        (id.map(str::to_owned), data.map(str::to_owned))
    }

    const STREAM: &[u8] = b"retry: 3000\n\n: heartbeat\n\nid: e1-1\ndata: {\"ts\":5}\n\ndata: a\ndata: b\n\nid: e1-7\n\nevent: x\r\nid: 9\r\ndata:no-space\r\n\r\n";

    #[test]
    fn parses_fields_comments_and_id_only_frames() {
        let mut parser = SseParser::default();
        let got = frames(&mut parser, STREAM);
        assert_eq!(
            got,
            vec![
                owned(Some("e1-1"), Some("{\"ts\":5}")),
                owned(None, Some("a\nb")),
                owned(Some("e1-7"), None),
                owned(Some("9"), Some("no-space")),
            ]
        );
        assert_eq!(parser.comments(), 1);
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_frames() {
        let whole = frames(&mut SseParser::default(), STREAM);
        for cut in 0..STREAM.len() {
            for cut2 in cut..STREAM.len() {
                let mut parser = SseParser::default();
                let mut got = frames(&mut parser, &STREAM[..cut]);
                got.extend(frames(&mut parser, &STREAM[cut..cut2]));
                got.extend(frames(&mut parser, &STREAM[cut2..]));
                assert_eq!(got, whole, "cuts at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let encoded = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        for cut in 0..encoded.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            decoder
                .feed(&encoded[..cut], &mut |b| out.extend_from_slice(b))
                .unwrap();
            decoder
                .feed(&encoded[cut..], &mut |b| out.extend_from_slice(b))
                .unwrap();
            assert_eq!(out, b"hello, world", "cut at {cut}");
            assert!(decoder.is_done());
        }
        let mut decoder = ChunkedDecoder::default();
        assert_eq!(decoder.feed(b"zz\r\n", &mut |_| {}), Err(ChunkError));
    }

    #[test]
    fn ids_and_timestamps() {
        assert_eq!(seq_of(b"7f3a9c-42"), Some(42));
        assert_eq!(seq_of(b"a-b-1"), Some(1));
        assert_eq!(seq_of(b"42"), Some(42));
        assert_eq!(seq_of(b"abc"), None);
        assert_eq!(seq_of(b"abc-"), None);
        assert_eq!(
            ts_of(br#"{"n":1,"ts": 1700000000000001,"pad":"x"}"#),
            Some(1_700_000_000_000_001)
        );
        assert_eq!(ts_of(br#"{"n":1}"#), None);
        assert_eq!(
            payload_seq_of(br#"{"ts":17,"seq": 42,"n":9,"pad":"x"}"#),
            Some(42)
        );
        assert_eq!(payload_seq_of(br#"{"ts":17,"n":9}"#), None);
        assert_eq!(payload_seq_of(br#"{"seq":"7"}"#), None);
        assert_eq!(count_of(br#"{"ts":17,"seq":42,"n":9,"pad":"x"}"#), Some(9));
        assert_eq!(count_of(br#"{"ts":17,"nn":9}"#), None);
    }
}
