//! Wire codec hot paths: decoding an OIP request (JSON tensors vs the binary extension vs gRPC)
//! and encoding a response, at 1 and 64 rows of the fraud model's 12 features.

use std::hint::black_box;

use ballast_api::codec::http::{OutputFormat, decode_request, encode_response};
use ballast_core::{Tensor, TensorData};
use ballast_serve::InferResponse;
use criterion::{Criterion, criterion_group, criterion_main};

fn json_body(rows: usize) -> Vec<u8> {
    let data: Vec<f32> = (0..rows * 12).map(|i| i as f32 * 0.37 - 3.0).collect();
    serde_json::json!({"inputs": [{"name": "features", "shape": [rows, 12], "datatype": "FP32", "data": data}]})
        .to_string()
        .into_bytes()
}

fn binary_body(rows: usize) -> (Vec<u8>, usize) {
    let header = serde_json::json!({"inputs": [{"name": "features", "shape": [rows, 12], "datatype": "FP32",
        "parameters": {"binary_data_size": rows * 48}}], "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = header.clone().into_bytes();
    for i in 0..rows * 12 {
        body.extend_from_slice(&(i as f32 * 0.37 - 3.0).to_le_bytes());
    }
    (body, header.len())
}

fn codec(c: &mut Criterion) {
    for rows in [1usize, 64] {
        let json = json_body(rows);
        c.bench_function(&format!("decode_json_{rows}_rows"), |b| {
            b.iter(|| decode_request(black_box(&json), None).map(|d| d.request.inputs.len()))
        });
        let (binary, header_len) = binary_body(rows);
        c.bench_function(&format!("decode_binary_{rows}_rows"), |b| {
            b.iter(|| {
                decode_request(black_box(&binary), Some(header_len)).map(|d| d.request.inputs.len())
            })
        });
        let response = InferResponse {
            model: "fraud".into(),
            version: "2".into(),
            id: None,
            outputs: vec![
                Tensor::new(
                    "probability",
                    vec![rows, 1],
                    TensorData::F32(vec![0.25; rows]),
                )
                .unwrap_or_else(|e| panic!("{e}")),
                Tensor::new(
                    "is_fraud",
                    vec![rows, 1],
                    TensorData::Bool(vec![false; rows]),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ],
            timing: Default::default(),
        };
        let json_fmt = OutputFormat::default();
        c.bench_function(&format!("encode_json_{rows}_rows"), |b| {
            b.iter(|| encode_response(black_box(&response), &json_fmt).map(|e| e.body.len()))
        });
        let bin_fmt = OutputFormat {
            default_binary: true,
            per_output: Vec::new(),
        };
        c.bench_function(&format!("encode_binary_{rows}_rows"), |b| {
            b.iter(|| encode_response(black_box(&response), &bin_fmt).map(|e| e.body.len()))
        });
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
