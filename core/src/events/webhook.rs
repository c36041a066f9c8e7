//! Webhook deliveries, the same natively and at the edge: a batch is a
//! JSON array of CloudEvents (`application/cloudevents-batch+json`), signed
//! when the exporter has a secret.

use crate::secret::SecretHash;
use crate::text::HEX_LOWER;

/// The content type of a delivery.
pub const CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// The header carrying a delivery's signature:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "komainu-signature";

/// The header carrying how many events a delivery holds.
pub const COUNT_HEADER: &str = "komainu-event-count";

/// The body of a delivery: the events' JSON texts as one JSON array.
pub fn batch_body<'a>(events: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut body = vec![b'['];
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.as_bytes());
    }
    body.push(b']');
    body
}

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let t = t.to_string();
    let mut message = Vec::with_capacity(t.len() + 1 + body.len());
    message.extend_from_slice(t.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    let tag = SecretHash::from_secret(secret).mac(&message);
    let mut hex = String::with_capacity(64);
    for b in tag {
        hex.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        hex.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
    format!("t={t},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        use hmac::Mac as _;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec-0123456789abcdef").unwrap();
        mac.update(b"1700000000.[1,2]");
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let body = batch_body(["1", "2"]);
        assert_eq!(body, b"[1,2]");
        assert_eq!(
            signature(b"whsec-0123456789abcdef", 1_700_000_000, &body),
            format!("t=1700000000,v1={expected}")
        );
    }
}
