//! Events' JSON, written by hand.
//!
//! A request event is made for every request: its CloudEvent is written
//! straight into its batch's buffer, field by field, with no value tree, no
//! formatter and no allocation. Other events are rare: their `data` goes
//! through serde. The tests of [`super`] hold the exact output.

use std::net::IpAddr;

use crate::text::HEX_LOWER;

/// What each byte becomes in a JSON string: 0 itself, `u` `\u00XX`, any
/// other a backslash and that byte.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a JSON string.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    // Most strings need no escape: checked without a branch per byte (the
    // compiler makes it a few vector operations), copied whole.
    let clean = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if clean {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        // Every escaped byte is ASCII: `i` is a character boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        if escape == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
            out.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(escape));
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a string, or `null`.
pub(crate) fn opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push_str("null"),
    }
}

/// Appends an unsigned integer.
pub(crate) fn uint(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends microseconds as milliseconds, as the shortest decimal of the
/// `f64` `us / 1000` reads (`12.0`, `0.5`, `3.125`).
pub(crate) fn millis(out: &mut String, us: u64) {
    uint(out, us / 1000);
    let frac = us % 1000;
    let text = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    // Trailing zeros left out, one kept after the point.
    let len = match frac {
        0 => 2,
        _ if frac % 100 == 0 => 2,
        _ if frac % 10 == 0 => 3,
        _ => 4,
    };
    out.push_str(std::str::from_utf8(&text[..len]).unwrap_or(".0"));
}

/// Appends an address as a JSON string. The last one written on this
/// thread is remembered: most calls come from few clients.
pub(crate) fn ip(out: &mut String, addr: IpAddr) {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, String)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, text)) if *seen == addr => string(out, text),
            _ => {
                let text = addr.to_string();
                string(out, &text);
                *last = Some((addr, text));
            }
        }
    });
}

/// Appends bytes as lowercase hexadecimal.
pub(crate) fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn strings_are_escaped_as_serde_escapes_them() {
        for s in [
            "plain",
            "a\"b\\c",
            "tab\there\nnew\r\u{8}\u{c}",
            "\u{1}\u{1f}",
            "é ü 漢字 🦀",
            "",
        ] {
            assert_eq!(
                written(|o| string(o, s)),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn microseconds_read_as_the_f64_milliseconds_serde_writes() {
        for us in [
            0,
            1,
            10,
            100,
            120,
            999,
            1000,
            1500,
            3125,
            12_000,
            123_456_789,
        ] {
            let f = us as f64 / 1000.0;
            assert_eq!(
                written(|o| millis(o, us)),
                serde_json::to_string(&f).unwrap(),
                "{us}"
            );
        }
    }

    #[test]
    fn addresses_are_their_text_even_when_one_follows_another() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(written(|o| ip(o, a)), "\"127.0.0.1\"");
        assert_eq!(written(|o| ip(o, a)), "\"127.0.0.1\"");
        assert_eq!(written(|o| ip(o, b)), "\"2001:db8::1\"");
    }
}
