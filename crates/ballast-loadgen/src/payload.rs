//! Request bodies, built once before a run and cycled through round-robin: random tensors that
//! fit a model's metadata, or explicit FP32 rows. Each payload exists in both wire forms (HTTP
//! body and gRPC `ModelInferRequest` with `raw_input_contents`) so one set serves either
//! protocol.

use anyhow::{bail, ensure};
use ballast_proto::inference::ModelInferRequest;
use ballast_proto::inference::model_infer_request::InferInputTensor;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::ModelMeta;

/// Size of every variable dimension after the first one (the first is the row count).
const OTHER_VARIABLE_DIM: usize = 8;
/// Length of each random `BYTES` element: short, like a category label.
const RANDOM_STRING_LEN: usize = 8;
/// Random integers are drawn from `0..RANDOM_INT_BOUND`: small, so they stay valid as indices
/// or category codes of most models.
const RANDOM_INT_BOUND: i64 = 100;

/// Prebuilt request bodies, cycled through round-robin.
#[derive(Debug, Clone, Default)]
pub struct Payloads {
    /// HTTP bodies.
    pub http: Vec<HttpPayload>,
    /// gRPC requests (`model_name`/`model_version` are set from the target at run time).
    pub grpc: Vec<ModelInferRequest>,
}

/// One HTTP request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPayload {
    /// JSON header, followed by the binary tensor data when `header_len` is `Some`.
    pub body: Bytes,
    /// Length of the JSON header, sent as `Inference-Header-Content-Length` when `Some`.
    pub header_len: Option<usize>,
}

/// The elements of one tensor. Serializes as the flat JSON `data` array.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum Values {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// FP16 values held as the f32 they are exactly (JSON has no half type).
    Fp16(Vec<f32>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

impl Values {
    fn random(datatype: &str, n: usize, rng: &mut StdRng) -> anyhow::Result<Self> {
        Ok(match datatype {
            "BOOL" => Values::Bool((0..n).map(|_| rng.random_bool(0.5)).collect()),
            "UINT8" => Values::Uint8((0..n).map(|_| rng.random::<u8>()).collect()),
            "FP16" => Values::Fp16(
                (0..n)
                    .map(|_| half::f16::from_f64(standard_normal(rng)).to_f32())
                    .collect(),
            ),
            "INT32" => Values::Int32(
                (0..n)
                    .map(|_| rng.random_range(0..RANDOM_INT_BOUND as i32))
                    .collect(),
            ),
            "INT64" => Values::Int64(
                (0..n)
                    .map(|_| rng.random_range(0..RANDOM_INT_BOUND))
                    .collect(),
            ),
            "FP32" => Values::Fp32((0..n).map(|_| standard_normal(rng) as f32).collect()),
            "FP64" => Values::Fp64((0..n).map(|_| standard_normal(rng)).collect()),
            "BYTES" => Values::Bytes(
                (0..n)
                    .map(|_| {
                        (0..RANDOM_STRING_LEN)
                            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                            .collect()
                    })
                    .collect(),
            ),
            other => bail!(
                "datatype {other} is not supported; expected BOOL, UINT8, INT32, INT64, FP16, FP32, FP64 or BYTES"
            ),
        })
    }

    /// Little-endian raw bytes; `BYTES` elements each carry a 4-byte little-endian length.
    fn raw(&self) -> Vec<u8> {
        match self {
            Values::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
            Values::Uint8(v) => v.clone(),
            Values::Fp16(v) => v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
            Values::Int32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Bytes(v) => {
                let mut out = Vec::with_capacity(v.iter().map(|s| 4 + s.len()).sum());
                for s in v {
                    // Elements are RANDOM_STRING_LEN bytes: the length always fits.
                    out.extend_from_slice(
                        &u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes(),
                    );
                    out.extend_from_slice(s.as_bytes());
                }
                out
            }
        }
    }
}

/// One sample of N(0, 1) (Box–Muller).
fn standard_normal(rng: &mut StdRng) -> f64 {
    // 1 - [0, 1) is (0, 1]: never ln(0).
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One input tensor of one request.
struct Tensor {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    values: Values,
}

#[derive(Serialize)]
struct JsonRequest<'a> {
    inputs: Vec<JsonInput<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<JsonRequestParameters>,
}

#[derive(Serialize)]
struct JsonInput<'a> {
    name: &'a str,
    shape: &'a [i64],
    datatype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<JsonInputParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Values>,
}

#[derive(Serialize)]
struct JsonInputParameters {
    binary_data_size: usize,
}

#[derive(Serialize)]
struct JsonRequestParameters {
    binary_data_output: bool,
}

fn http_payload(tensors: &[Tensor], binary: bool) -> anyhow::Result<HttpPayload> {
    if !binary {
        let request = JsonRequest {
            inputs: tensors
                .iter()
                .map(|t| JsonInput {
                    name: &t.name,
                    shape: &t.shape,
                    datatype: &t.datatype,
                    parameters: None,
                    data: Some(&t.values),
                })
                .collect(),
            parameters: None,
        };
        return Ok(HttpPayload {
            body: serde_json::to_vec(&request)?.into(),
            header_len: None,
        });
    }
    let raws: Vec<Vec<u8>> = tensors.iter().map(|t| t.values.raw()).collect();
    let request = JsonRequest {
        inputs: tensors
            .iter()
            .zip(&raws)
            .map(|(t, raw)| JsonInput {
                name: &t.name,
                shape: &t.shape,
                datatype: &t.datatype,
                parameters: Some(JsonInputParameters {
                    binary_data_size: raw.len(),
                }),
                data: None,
            })
            .collect(),
        parameters: Some(JsonRequestParameters {
            binary_data_output: true,
        }),
    };
    let mut body = serde_json::to_vec(&request)?;
    let header_len = body.len();
    body.reserve_exact(raws.iter().map(Vec::len).sum());
    for raw in &raws {
        body.extend_from_slice(raw);
    }
    Ok(HttpPayload {
        body: body.into(),
        header_len: Some(header_len),
    })
}

fn grpc_request(model: &str, tensors: &[Tensor]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.to_string(),
        inputs: tensors
            .iter()
            .map(|t| InferInputTensor {
                name: t.name.clone(),
                datatype: t.datatype.clone(),
                shape: t.shape.clone(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: tensors
            .iter()
            .map(|t| Bytes::from(t.values.raw()))
            .collect(),
        ..Default::default()
    }
}

fn build(model: &str, requests: &[Vec<Tensor>], binary: bool) -> anyhow::Result<Payloads> {
    Ok(Payloads {
        http: requests
            .iter()
            .map(|r| http_payload(r, binary))
            .collect::<anyhow::Result<_>>()?,
        grpc: requests.iter().map(|r| grpc_request(model, r)).collect(),
    })
}

/// The concrete shape of an input: the first `-1` becomes `rows`, other `-1`s become 8.
fn concrete_shape(shape: &[i64], rows: usize) -> anyhow::Result<(Vec<i64>, usize)> {
    let mut first = true;
    let mut dims = Vec::with_capacity(shape.len());
    let mut count: usize = 1;
    for &d in shape {
        let d = if d < 0 {
            let d = if first { rows } else { OTHER_VARIABLE_DIM };
            first = false;
            d
        } else {
            usize::try_from(d)?
        };
        count = count.checked_mul(d).ok_or_else(|| {
            anyhow::anyhow!("shape {shape:?} with {rows} rows has too many elements")
        })?;
        dims.push(i64::try_from(d)?);
    }
    Ok((dims, count))
}

/// Builds `count` distinct random payloads for `meta`'s inputs, each with `rows` rows (the first
/// `-1` dimension of each input becomes `rows`, any other `-1` becomes 8), in both HTTP and gRPC
/// forms.
///
/// HTTP: with `binary`, inputs use the binary tensor extension (JSON header, then raw bytes
/// announced by `parameters.binary_data_size`) and the request asks for binary outputs
/// (`"parameters":{"binary_data_output":true}`); without it, inputs are JSON `data`. gRPC uses
/// `raw_input_contents`. Supported datatypes: BOOL, INT32, INT64 (uniform in 0..100), FP32,
/// FP64 (N(0, 1)), BYTES (8 lowercase letters; raw form has a 4-byte little-endian length per
/// element). Deterministic for a given `seed`.
pub fn random_payloads(
    meta: &ModelMeta,
    rows: usize,
    count: usize,
    binary: bool,
    seed: u64,
) -> anyhow::Result<Payloads> {
    ensure!(count > 0, "at least one payload is needed");
    ensure!(
        !meta.inputs.is_empty(),
        "model {} declares no inputs",
        meta.name
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut requests = Vec::with_capacity(count);
    for _ in 0..count {
        let mut tensors = Vec::with_capacity(meta.inputs.len());
        for input in &meta.inputs {
            let (shape, n) = concrete_shape(&input.shape, rows)?;
            let values = Values::random(&input.datatype, n, &mut rng)
                .map_err(|e| anyhow::anyhow!("input {}: {e}", input.name))?;
            tensors.push(Tensor {
                name: input.name.clone(),
                datatype: input.datatype.clone(),
                shape,
                values,
            });
        }
        requests.push(tensors);
    }
    build(&meta.name, &requests, binary)
}

/// Builds payloads from explicit rows of one FP32 input: payload `k` carries rows
/// `k·rows_per_request ..` (`rows_per_request` consecutive rows, wrapping around to the first
/// row), with shape `[rows_per_request, row_len]`. There are enough payloads to carry every row
/// at least once. All rows must have the same non-zero length.
pub fn fp32_row_payloads(
    input_name: &str,
    rows: &[Vec<f32>],
    rows_per_request: usize,
    binary: bool,
) -> anyhow::Result<Payloads> {
    ensure!(!rows.is_empty(), "no rows to send");
    ensure!(rows_per_request > 0, "rows_per_request must be at least 1");
    let row_len = rows[0].len();
    ensure!(row_len > 0, "rows must not be empty");
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != row_len) {
        bail!(
            "row {i} has {} values but row 0 has {row_len}; all rows need the same length",
            row.len()
        );
    }
    let count = rows.len().div_ceil(rows_per_request);
    let shape = vec![i64::try_from(rows_per_request)?, i64::try_from(row_len)?];
    let requests: Vec<Vec<Tensor>> = (0..count)
        .map(|k| {
            let values = (0..rows_per_request)
                .flat_map(|j| {
                    rows[(k * rows_per_request + j) % rows.len()]
                        .iter()
                        .copied()
                })
                .collect();
            vec![Tensor {
                name: input_name.to_string(),
                datatype: "FP32".to_string(),
                shape: shape.clone(),
                values: Values::Fp32(values),
            }]
        })
        .collect();
    build("", &requests, binary)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::TensorMeta;

    fn meta() -> ModelMeta {
        let t = |name: &str, datatype: &str, shape: &[i64]| TensorMeta {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        };
        ModelMeta {
            name: "m".into(),
            inputs: vec![
                t("b", "BOOL", &[-1, 2]),
                t("i", "INT32", &[-1]),
                t("l", "INT64", &[-1, -1]),
                t("f", "FP32", &[-1, 3]),
                t("d", "FP64", &[2]),
                t("s", "BYTES", &[-1]),
            ],
            outputs: vec![t("y", "FP32", &[-1])],
        }
    }

    /// Splits a binary HTTP body into its parsed JSON header and the binary section.
    fn split(p: &HttpPayload) -> (Value, &[u8]) {
        let n = p.header_len.unwrap();
        (serde_json::from_slice(&p.body[..n]).unwrap(), &p.body[n..])
    }

    #[test]
    fn binary_sections_add_up_to_the_body() {
        let p = random_payloads(&meta(), 5, 3, true, 7).unwrap();
        assert_eq!(p.http.len(), 3);
        for payload in &p.http {
            let (header, binary) = split(payload);
            assert_eq!(header["parameters"]["binary_data_output"], true);
            let sizes: Vec<usize> = header["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    assert!(i.get("data").is_none());
                    i["parameters"]["binary_data_size"].as_u64().unwrap() as usize
                })
                .collect();
            assert_eq!(
                payload.header_len.unwrap() + sizes.iter().sum::<usize>(),
                payload.body.len()
            );
            // rows=5; second -1 is 8; BYTES: 4-byte length + 8 letters.
            assert_eq!(
                sizes,
                vec![5 * 2, 5 * 4, 5 * 8 * 8, 5 * 3 * 4, 2 * 8, 5 * 12]
            );
            let shapes: Vec<Value> = header["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["shape"].clone())
                .collect();
            assert_eq!(
                Value::Array(shapes),
                serde_json::json!([[5, 2], [5], [5, 8], [5, 3], [2], [5]])
            );
            // The BYTES section is length-prefixed.
            let s = &binary[binary.len() - 60..];
            assert_eq!(u32::from_le_bytes([s[0], s[1], s[2], s[3]]), 8);
            assert!(s[4..12].iter().all(u8::is_ascii_lowercase));
        }
    }

    #[test]
    fn json_payloads_carry_flat_data_of_the_right_length() {
        let p = random_payloads(&meta(), 4, 2, false, 7).unwrap();
        for payload in &p.http {
            assert_eq!(payload.header_len, None);
            let v: Value = serde_json::from_slice(&payload.body).unwrap();
            assert!(v.get("parameters").is_none());
            for input in v["inputs"].as_array().unwrap() {
                let n: u64 = input["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap())
                    .product();
                let data = input["data"].as_array().unwrap();
                assert_eq!(data.len() as u64, n, "{input}");
                match input["datatype"].as_str().unwrap() {
                    "BOOL" => assert!(data.iter().all(Value::is_boolean)),
                    "INT32" | "INT64" => {
                        assert!(data.iter().all(|x| (0..100).contains(&x.as_i64().unwrap())))
                    }
                    "FP32" | "FP64" => assert!(data.iter().all(Value::is_f64)),
                    "BYTES" => assert!(data.iter().all(Value::is_string)),
                    other => panic!("{other}"),
                }
            }
        }
    }

    #[test]
    fn grpc_form_matches_the_http_binary_form() {
        let p = random_payloads(&meta(), 3, 2, true, 1).unwrap();
        for (h, g) in p.http.iter().zip(&p.grpc) {
            assert_eq!(g.model_name, "m");
            assert_eq!(g.inputs.len(), g.raw_input_contents.len());
            let (_, binary) = split(h);
            let joined: Vec<u8> = g
                .raw_input_contents
                .iter()
                .flat_map(|b| b.iter().copied())
                .collect();
            assert_eq!(joined, binary);
            assert_eq!(g.inputs[2].shape, vec![3, 8]);
        }
    }

    #[test]
    fn payloads_are_distinct_and_deterministic_per_seed() {
        let a = random_payloads(&meta(), 2, 4, true, 42).unwrap();
        let b = random_payloads(&meta(), 2, 4, true, 42).unwrap();
        let c = random_payloads(&meta(), 2, 4, true, 43).unwrap();
        assert_eq!(a.http, b.http);
        assert_ne!(a.http, c.http);
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(a.http[i].body, a.http[j].body);
            }
        }
    }

    #[test]
    fn floats_look_standard_normal() {
        let m = ModelMeta {
            name: "m".into(),
            inputs: vec![TensorMeta {
                name: "x".into(),
                datatype: "FP64".into(),
                shape: vec![-1],
            }],
            outputs: vec![],
        };
        let p = random_payloads(&m, 20_000, 1, true, 3).unwrap();
        let raw = &p.grpc[0].raw_input_contents[0];
        let xs: Vec<f64> = raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn unsupported_datatype_and_empty_requests_are_errors() {
        let mut m = meta();
        m.inputs[0].datatype = "BF16".into();
        let err = random_payloads(&m, 1, 1, true, 0).unwrap_err().to_string();
        assert!(err.contains("input b") && err.contains("BF16"), "{err}");
        assert!(random_payloads(&meta(), 1, 0, true, 0).is_err());
        assert!(fp32_row_payloads("x", &[], 1, true).is_err());
        assert!(fp32_row_payloads("x", &[vec![1.0]], 0, true).is_err());
        assert!(fp32_row_payloads("x", &[vec![1.0], vec![1.0, 2.0]], 1, true).is_err());
    }

    #[test]
    fn row_payloads_cycle_through_the_rows() {
        let rows: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, i as f32 + 0.5]).collect();
        let p = fp32_row_payloads("x", &rows, 2, true).unwrap();
        assert_eq!(p.http.len(), 3);
        let raw = &p.grpc[2].raw_input_contents[0];
        let xs: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(xs, vec![4.0, 4.5, 0.0, 0.5]);
        assert_eq!(p.grpc[2].inputs[0].shape, vec![2, 2]);
        let (header, binary) = split(&p.http[2]);
        assert_eq!(header["inputs"][0]["shape"], serde_json::json!([2, 2]));
        assert_eq!(binary, &raw[..]);

        let p = fp32_row_payloads("x", &rows, 2, false).unwrap();
        let v: Value = serde_json::from_slice(&p.http[0].body).unwrap();
        assert_eq!(
            v["inputs"][0]["data"],
            serde_json::json!([0.0, 0.5, 1.0, 1.5])
        );
        assert_eq!(v["inputs"][0]["datatype"], "FP32");
    }
}
