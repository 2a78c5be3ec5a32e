//! The gRPC ModelInferRequest decoder on arbitrary protobuf bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = ballast_proto::inference::ModelInferRequest::decode(data) {
        let _ = ballast_api::codec::grpc::decode_request(req);
    }
});
