//! The binary tensor extension: a JSON header of fuzzer-chosen length followed by raw tensor
//! bytes, plus the raw tensor decoder for every datatype.
#![no_main]

use ballast_core::{DataType, TensorData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let split = u16::from_le_bytes([data[0], data[1]]) as usize;
    let body = &data[2..];
    let _ = ballast_api::codec::http::decode_request(body, Some(split));
    let dtype = DataType::ALL[data[0] as usize % DataType::ALL.len()];
    let _ = TensorData::from_raw(dtype, body, data[1] as usize, "fuzz");
});
