//! Appending numbers and addresses to header values on the request path,
//! as bytes, without the formatting machinery (`write!` and UTF-8 checks
//! cost more than the work itself).

use std::cell::RefCell;
use std::net::IpAddr;

/// Lower-case hexadecimal digits.
pub const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Runs `f` with an empty scratch buffer kept by the thread, so that text
/// built for one header costs no allocation (a nested call gets a fresh
/// buffer).
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            f(&mut buf)
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]));
}

/// `n` in decimal, written (two digits per step) at the end of `digits`.
pub fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut i = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    &digits[i..]
}

/// Appends an IP address in its usual text form.
pub fn push_ip(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// `text` made safe to place in HTML (element content or a quoted
/// attribute value).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses() {
        let mut s = Vec::new();
        push_u64(&mut s, 0);
        s.push(b' ');
        push_u64(&mut s, u64::MAX);
        for n in [1, 9, 10, 99, 100, 101, 12345, 1_000_000] {
            let mut t = Vec::new();
            push_u64(&mut t, n);
            assert_eq!(t, n.to_string().as_bytes());
        }
        s.push(b' ');
        push_ip(&mut s, "10.0.255.1".parse().unwrap());
        s.push(b' ');
        push_ip(&mut s, "::1".parse().unwrap());
        assert_eq!(s, b"0 18446744073709551615 10.0.255.1 ::1");
        let nested = with_scratch(|a| {
            a.push(b'a');
            with_scratch(|b| {
                b.push(b'b');
                b.len()
            }) + a.len()
        });
        assert_eq!(nested, 2);
        assert_eq!(with_scratch(|a| a.len()), 0);
    }
}
