//! The OIP HTTP/JSON request decoder on arbitrary bytes (no binary section).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ballast_api::codec::http::decode_request(data, None);
});
