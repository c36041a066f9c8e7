//! The little of RESP (the Redis protocol, version 2) the counter path
//! speaks: commands as arrays of bulk strings, and replies.

/// Appends a command: `*N`, then each argument as a bulk string.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    komainu_core::text::push_u64(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        komainu_core::text::push_u64(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$3 foo`, or `$-1` (`None`).
    Bulk(Option<Vec<u8>>),
    /// `*2 …`, or `*-1` (`None`).
    Array(Option<Vec<Reply>>),
}

/// Parses the reply at the start of `buf`: `Ok(None)` while incomplete,
/// else the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some(line_end) = memchr::memmem::find(buf, b"\r\n") else {
        return Ok(None);
    };
    let (kind, line) = match buf.split_first() {
        Some((&kind, _)) => (kind, &buf[1..line_end]),
        None => return Ok(None),
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let after = line_end + 2;
    match kind {
        b'+' => Ok(Some((Reply::Status(text()), after))),
        b'-' => Ok(Some((Reply::Error(text()), after))),
        b':' => Ok(Some((Reply::Int(integer(line)?), after))),
        b'$' => {
            let len = integer(line)?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((Reply::Bulk(Some(buf[after..end].to_vec())), end + 2)))
        }
        b'*' => {
            let len = integer(line)?;
            if len < 0 {
                return Ok(Some((Reply::Array(None), after)));
            }
            let mut items = Vec::with_capacity((len as usize).min(64));
            let mut at = after;
            for _ in 0..len {
                match parse(&buf[at..])? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        other => Err(format!("unexpected reply type {:?}", char::from(other))),
    }
}

fn integer(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("invalid number in reply: {}", String::from_utf8_lossy(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_replies() {
        let mut out = Vec::new();
        command(&mut out, &[b"GET", b"k"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let reply = b"*3\r\n:1\r\n$2\r\nab\r\n$-1\r\n+OK\r\n";
        let (r, used) = parse(reply).unwrap().unwrap();
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Int(1),
                Reply::Bulk(Some(b"ab".to_vec())),
                Reply::Bulk(None)
            ]))
        );
        assert_eq!(
            parse(&reply[used..]).unwrap().unwrap().0,
            Reply::Status("OK".into())
        );
        for cut in 0..used {
            assert_eq!(parse(&reply[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(
            parse(b"-NOSCRIPT No matching script\r\n")
                .unwrap()
                .unwrap()
                .0,
            Reply::Error("NOSCRIPT No matching script".into())
        );
        assert!(parse(b"?\r\n").is_err());
    }
}
