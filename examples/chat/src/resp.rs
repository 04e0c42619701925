//! RESP2, the Redis wire protocol: encoding commands and an incremental,
//! bounded decoder for replies.
//!
//! Only what a pub/sub adapter needs: commands are arrays of bulk strings,
//! replies are any RESP2 value. The decoder accepts input split anywhere,
//! holds at most one incomplete value, and turns every malformed or oversized
//! reply into a typed [`RespError`] instead of panicking or growing without
//! bound.

use std::fmt;

/// Longest bulk string accepted (Redis's own default `proto-max-bulk-len`
/// is 512 MiB; a chat never needs more than a few KiB).
pub const MAX_BULK: usize = 16 << 20;
/// Most elements of one array.
pub const MAX_ARRAY: usize = 1 << 20;
/// Deepest nesting of arrays.
pub const MAX_DEPTH: usize = 16;
/// Longest line (simple string, error, integer or length header).
pub const MAX_LINE: usize = 64 << 10;

/// One RESP2 value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR message`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo` (`None`: the null bulk string `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None`: the null array `*-1`)
    Array(Option<Vec<Value>>),
}

/// Why a reply could not be decoded. The connection it came from is out of
/// step and must be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A value starts with a byte that is not a RESP2 type marker.
    BadType(u8),
    /// A line is not terminated by CRLF where it must be.
    BadLineEnd,
    /// A length or integer is not a decimal number in range.
    BadNumber,
    /// A simple string or error line is not UTF-8.
    BadUtf8,
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
    /// A bulk string longer than [`MAX_BULK`].
    BulkTooLong(i64),
    /// An array longer than [`MAX_ARRAY`].
    ArrayTooLong(i64),
    /// Arrays nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::BadType(b) => write!(f, "RESP: unknown type byte 0x{b:02x}"),
            RespError::BadLineEnd => f.write_str("RESP: missing CRLF"),
            RespError::BadNumber => f.write_str("RESP: malformed number"),
            RespError::BadUtf8 => f.write_str("RESP: line is not UTF-8"),
            RespError::LineTooLong => write!(f, "RESP: line longer than {MAX_LINE} bytes"),
            RespError::BulkTooLong(n) => write!(f, "RESP: bulk string of {n} bytes is too long"),
            RespError::ArrayTooLong(n) => write!(f, "RESP: array of {n} elements is too long"),
            RespError::TooDeep => write!(f, "RESP: arrays nested deeper than {MAX_DEPTH}"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends a command (an array of bulk strings) to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        push_decimal(out, a.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// An incremental reply decoder: feed bytes with [`Decoder::feed`], take
/// whole values with [`Decoder::next`].
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not form a whole value yet.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Forgets everything buffered (after a reconnect).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// The next whole value, `Ok(None)` if more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Value>, RespError> {
        let input = &self.buf[self.start..];
        match parse(input, 0)? {
            None => {
                // Compact when the consumed prefix dominates, so a long-lived
                // connection does not grow its buffer.
                if self.start > 0 && self.start >= self.buf.len() / 2 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(None)
            }
            Some((v, used)) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(v))
            }
        }
    }
}

/// Parses one value from the start of `input`: `Some((value, bytes used))`,
/// or `None` if `input` ends before the value does.
pub fn parse(input: &[u8], depth: usize) -> Result<Option<(Value, usize)>, RespError> {
    let Some(&marker) = input.first() else {
        return Ok(None);
    };
    let Some((line, mut used)) = line(&input[1..])? else {
        return Ok(None);
    };
    used += 1;
    match marker {
        b'+' => Ok(Some((Value::Simple(utf8(line)?), used))),
        b'-' => Ok(Some((Value::Error(utf8(line)?), used))),
        b':' => Ok(Some((Value::Integer(number(line)?), used))),
        b'$' => {
            let n = number(line)?;
            if n == -1 {
                return Ok(Some((Value::Bulk(None), used)));
            }
            if n < 0 {
                return Err(RespError::BadNumber);
            }
            if n as u64 > MAX_BULK as u64 {
                return Err(RespError::BulkTooLong(n));
            }
            let n = n as usize;
            let rest = &input[used..];
            if rest.len() < n + 2 {
                return Ok(None);
            }
            if &rest[n..n + 2] != b"\r\n" {
                return Err(RespError::BadLineEnd);
            }
            Ok(Some((Value::Bulk(Some(rest[..n].to_vec())), used + n + 2)))
        }
        b'*' => {
            let n = number(line)?;
            if n == -1 {
                return Ok(Some((Value::Array(None), used)));
            }
            if n < 0 {
                return Err(RespError::BadNumber);
            }
            if n as u64 > MAX_ARRAY as u64 {
                return Err(RespError::ArrayTooLong(n));
            }
            if depth >= MAX_DEPTH {
                return Err(RespError::TooDeep);
            }
            // Never reserve more than the input could hold (3 bytes is the
            // shortest element), whatever the header claims.
            let mut items = Vec::with_capacity((n as usize).min(input.len() / 3));
            for _ in 0..n {
                match parse(&input[used..], depth + 1)? {
                    None => return Ok(None),
                    Some((v, u)) => {
                        items.push(v);
                        used += u;
                    }
                }
            }
            Ok(Some((Value::Array(Some(items)), used)))
        }
        other => Err(RespError::BadType(other)),
    }
}

/// The line at the start of `input` without its CRLF, and the bytes it
/// takes including the CRLF.
fn line(input: &[u8]) -> Result<Option<(&[u8], usize)>, RespError> {
    let limit = input.len().min(MAX_LINE + 2);
    match input[..limit]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
    {
        None if input.len() > MAX_LINE + 1 => Err(RespError::LineTooLong),
        None => Ok(None),
        Some(i) if input[i] == b'\n' => Err(RespError::BadLineEnd),
        Some(i) if i > MAX_LINE => Err(RespError::LineTooLong),
        Some(i) => match input.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&input[..i], i + 2))),
            Some(_) => Err(RespError::BadLineEnd),
        },
    }
}

fn utf8(line: &[u8]) -> Result<String, RespError> {
    String::from_utf8(line.to_vec()).map_err(|_| RespError::BadUtf8)
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    let (neg, digits) = match line.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadNumber);
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')))
            .ok_or(RespError::BadNumber)?;
    }
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Some(s.as_bytes().to_vec()))
    }

    fn all(input: &[u8]) -> Result<Vec<Value>, RespError> {
        let mut d = Decoder::new();
        d.feed(input);
        let mut out = Vec::new();
        while let Some(v) = d.next()? {
            out.push(v);
        }
        assert_eq!(d.buffered(), 0, "nothing left over");
        Ok(out)
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"PUBLISH", b"ch", b"a\r\nb"]);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n".to_vec()
        );
        // And the decoder reads it back (a command is a valid reply value).
        assert_eq!(
            all(&out).unwrap(),
            vec![Value::Array(Some(vec![
                bulk("PUBLISH"),
                bulk("ch"),
                bulk("a\r\nb")
            ]))]
        );
    }

    #[test]
    fn decodes_every_type() {
        let input =
            b"+OK\r\n-ERR wrong\r\n:-12\r\n:0\r\n$3\r\nfoo\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n\
                      *3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$2\r\nhi\r\n*2\r\n*1\r\n:1\r\n+x\r\n";
        assert_eq!(
            all(input).unwrap(),
            vec![
                Value::Simple("OK".into()),
                Value::Error("ERR wrong".into()),
                Value::Integer(-12),
                Value::Integer(0),
                bulk("foo"),
                bulk(""),
                Value::Bulk(None),
                Value::Array(None),
                Value::Array(Some(vec![])),
                Value::Array(Some(vec![bulk("message"), bulk("room"), bulk("hi")])),
                Value::Array(Some(vec![
                    Value::Array(Some(vec![Value::Integer(1)])),
                    Value::Simple("x".into())
                ])),
            ]
        );
    }

    #[test]
    fn input_split_at_every_byte_gives_the_same_values() {
        let input: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlobby\r\n:1\r\n\
                             *3\r\n$7\r\nmessage\r\n$5\r\nlobby\r\n$6\r\nEV\x01\r\n\x00\r\n:42\r\n$-1\r\n";
        let whole = all(input).unwrap();
        assert_eq!(whole.len(), 4);
        for cut in 0..=input.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            d.feed(&input[..cut]);
            while let Some(v) = d.next().unwrap() {
                got.push(v);
            }
            d.feed(&input[cut..]);
            while let Some(v) = d.next().unwrap() {
                got.push(v);
            }
            assert_eq!(got, whole, "split at {cut}");
        }
        // One byte at a time.
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in input {
            d.feed(std::slice::from_ref(b));
            while let Some(v) = d.next().unwrap() {
                got.push(v);
            }
        }
        assert_eq!(got, whole);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn incomplete_input_waits_and_keeps_its_bytes() {
        let mut d = Decoder::new();
        d.feed(b"$5\r\nhel");
        assert_eq!(d.next(), Ok(None));
        assert_eq!(d.buffered(), 7);
        d.feed(b"lo\r");
        assert_eq!(d.next(), Ok(None));
        d.feed(b"\n+");
        assert_eq!(d.next(), Ok(Some(bulk("hello"))));
        assert_eq!(d.next(), Ok(None));
        assert_eq!(d.buffered(), 1);
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        let cases: &[(&[u8], RespError)] = &[
            (b"?x\r\n", RespError::BadType(b'?')),
            (b"+OK\n", RespError::BadLineEnd),
            (b"+OK\rX", RespError::BadLineEnd),
            (b":12a\r\n", RespError::BadNumber),
            (b":\r\n", RespError::BadNumber),
            (b":-\r\n", RespError::BadNumber),
            (b":99999999999999999999\r\n", RespError::BadNumber),
            (b":9223372036854775808\r\n", RespError::BadNumber),
            (b"$-2\r\n", RespError::BadNumber),
            (b"$3\r\nfooXY", RespError::BadLineEnd),
            (
                b"$999999999999\r\n",
                RespError::BulkTooLong(999_999_999_999),
            ),
            (b"*-5\r\n", RespError::BadNumber),
            (b"*99999999\r\n", RespError::ArrayTooLong(99_999_999)),
            (b"+\xff\xfe\r\n", RespError::BadUtf8),
            (b"*1\r\n?\r\n", RespError::BadType(b'?')),
        ];
        for (input, want) in cases {
            let mut d = Decoder::new();
            d.feed(input);
            assert_eq!(
                d.next().as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_hold_without_waiting_for_the_whole_input() {
        // A header that claims a huge array is refused at once, before any
        // element arrives and without reserving memory for it.
        let mut d = Decoder::new();
        d.feed(b"*1048577\r\n");
        assert_eq!(d.next(), Err(RespError::ArrayTooLong(1_048_577)));
        // A line that never ends is refused once it passes MAX_LINE.
        let mut d = Decoder::new();
        d.feed(b"+");
        d.feed(&vec![b'a'; MAX_LINE]);
        assert_eq!(d.next(), Ok(None));
        d.feed(b"aa");
        assert_eq!(d.next(), Err(RespError::LineTooLong));
        // Nesting deeper than MAX_DEPTH.
        let mut deep = Vec::new();
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(b"*1\r\n");
        }
        deep.extend_from_slice(b":1\r\n");
        let mut d = Decoder::new();
        d.feed(&deep);
        assert_eq!(d.next(), Err(RespError::TooDeep));
        // Exactly MAX_DEPTH levels is fine.
        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(b"*1\r\n");
        }
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(all(&ok).unwrap().len(), 1);
    }

    #[test]
    fn a_long_stream_does_not_grow_the_buffer() {
        let mut d = Decoder::new();
        let mut n = 0;
        for i in 0..10_000 {
            d.feed(format!(":{i}\r\n:").as_bytes());
            d.feed(b"7\r");
            while let Some(v) = d.next().unwrap() {
                if v != Value::Integer(7) {
                    assert_eq!(v, Value::Integer(i64::from(i)));
                }
                n += 1;
            }
            d.feed(b"\n");
        }
        while let Some(_v) = d.next().unwrap() {
            n += 1;
        }
        assert_eq!(n, 20_000);
        assert!(d.buf.capacity() < 4096, "capacity {}", d.buf.capacity());
    }
}
