//! Entry points for the fuzz targets (`fuzz/`), built only by `cargo fuzz`
//! (`--cfg fuzzing`). Each runs one parser of the HTTP/1 path on arbitrary
//! bytes and checks what must hold whatever they are.

use crate::h1::fuzzing as h1;

/// A request head: parsing never panics; where the parser finds a whole
/// head, the head-end detector finds the same end.
pub fn request_head(data: &[u8]) {
    h1::request_head(data);
}

/// A chunked body: the verdict and the data do not depend on how the bytes
/// are split as they arrive.
pub fn chunked(data: &[u8]) {
    h1::chunked(data);
}

/// A backend's response head: reading its end and its framing never panics.
pub fn response_head(data: &[u8]) {
    h1::response_head(data);
}
