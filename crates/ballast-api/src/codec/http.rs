//! OIP v2 HTTP/JSON codec with the binary tensor data extension.
//!
//! A request body is a JSON header, optionally followed by raw tensor bytes when the
//! `Inference-Header-Content-Length` header gives the JSON part's length. Inputs carrying
//! `parameters.binary_data_size` take their bytes from the binary section in input order.
//! Outputs are rendered as JSON `data` or as binary (`parameters.binary_data_size`) per output:
//! the output's `binary_data` parameter wins, then the request's `binary_data_output`.

use std::fmt;
use std::time::Duration;

use ballast_core::tensor::{element_count, f16, float_range_error, fmt_number, fmt_shape};
use ballast_core::{DataType, Error, ErrorCode, Tensor, TensorData};
use ballast_serve::{InferRequest, InferResponse, Priority};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{PRIORITY_PARAMETER, TIMEOUT_PARAMETER, timeout_from_micros};

/// The HTTP header naming the length of the JSON part of a binary-extension body.
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

/// A decoded HTTP inference request.
#[derive(Debug)]
pub struct DecodedRequest {
    pub request: InferRequest,
    /// From the `timeout` parameter (microseconds).
    pub timeout: Option<Duration>,
    /// From the `priority` parameter.
    pub priority: Option<Priority>,
    pub format: OutputFormat,
    /// The request's other parameters as a JSON object, for the prediction log.
    pub parameters: Option<String>,
}

/// How each output is rendered.
#[derive(Debug, Default, Clone)]
pub struct OutputFormat {
    /// `binary_data_output` on the request: the default for outputs that do not say.
    pub default_binary: bool,
    /// Per requested output: `Some(binary)` when its own parameter says.
    pub per_output: Vec<(String, Option<bool>)>,
}

impl OutputFormat {
    pub fn is_binary(&self, name: &str) -> bool {
        self.per_output
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, b)| *b)
            .unwrap_or(self.default_binary)
    }
}

/// One element of a JSON `data` array, before the datatype is known.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    /// JSON `null`: a missing value (NaN) in a float tensor.
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Box<str>),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::UInt(u) => write!(f, "{u}"),
            Scalar::Float(x) => f.write_str(&fmt_number(*x)),
            Scalar::Str(s) => write!(f, "the string {:?}", truncate(s, 32)),
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A `data` field: nested arrays flattened in row-major order.
#[derive(Debug, Default)]
struct FlatData(Vec<Scalar>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        d.deserialize_any(FlatVisitor { out: &mut out })?;
        Ok(FlatData(out))
    }
}

struct FlatVisitor<'a> {
    out: &'a mut Vec<Scalar>,
}

impl<'de> de::DeserializeSeed<'de> for FlatVisitor<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array (possibly nested) of numbers, booleans or strings")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out.push(Scalar::Bool(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push(Scalar::Null);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.out.push(Scalar::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.out.push(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::UInt(v),
        });
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.out.push(Scalar::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.out.push(Scalar::Str(v.into()));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.out.reserve(n.min(1 << 16));
        }
        while seq
            .next_element_seed(FlatVisitor {
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }
}

#[derive(Deserialize)]
struct RequestJson {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Option<Vec<OutputJson>>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<FlatData>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

fn bool_param(
    params: &Option<Map<String, Value>>,
    key: &str,
    field: &str,
) -> Result<Option<bool>, Error> {
    match params.as_ref().and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::invalid(format!(
            "{field}.{key} must be a boolean, got {other}"
        ))),
    }
}

fn priority_param(params: &Option<Map<String, Value>>) -> Result<Option<Priority>, Error> {
    let field = "parameters.priority";
    match params.as_ref().and_then(|p| p.get(PRIORITY_PARAMETER)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(level) => Priority::from_level(level, field).map(Some),
            None => Err(Error::invalid(format!(
                "{field} must be an integer level or a class name, got {n}"
            ))),
        },
        Some(Value::String(s)) => Priority::parse_name(s, field).map(Some),
        Some(other) => Err(Error::invalid(format!(
            "{field} must be an integer level or one of {}, got {other}",
            Priority::CLIENT_NAMES
        ))),
    }
}

fn int_param(
    params: &Option<Map<String, Value>>,
    key: &str,
    field: &str,
) -> Result<Option<i64>, Error> {
    match params.as_ref().and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("{field}.{key} must be an integer, got {n}"))),
        Some(other) => Err(Error::invalid(format!(
            "{field}.{key} must be an integer, got {other}"
        ))),
    }
}

/// Concrete request dimensions; negative dimensions are refused.
pub fn request_shape(shape: &[i64], what: &str) -> Result<Vec<usize>, Error> {
    if shape.len() > 16 {
        return Err(Error::invalid(format!(
            "{what}: shape has rank {}, more than the 16 dimensions ballast accepts",
            shape.len()
        )));
    }
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            Error::invalid(format!(
                "{what}: shape {} has a negative dimension; requests must give concrete dimensions",
                fmt_shape(shape)
            ))
        })?;
    if element_count(&dims).is_none() {
        return Err(Error::invalid(format!(
            "{what}: shape {} has too many elements",
            fmt_shape(shape)
        )));
    }
    Ok(dims)
}

const FLOAT_WANTED_32: &str =
    "a number for FP32 (or null / \"NaN\" for a missing value, \"Infinity\" / \"-Infinity\")";
const FLOAT_WANTED_16: &str =
    "a number for FP16 (or null / \"NaN\" for a missing value, \"Infinity\" / \"-Infinity\")";
const FLOAT_WANTED_64: &str =
    "a number for FP64 (or null / \"NaN\" for a missing value, \"Infinity\" / \"-Infinity\")";

/// JSON has no NaN or infinity: a float element may be `null` or the string `"NaN"` (a
/// missing value), `"Infinity"`, `"-Infinity"` (also `"inf"`, `"-inf"`, any case). Whether the
/// model accepts them is decided by validation, which names the setting.
fn non_finite(v: &Scalar) -> Option<f64> {
    match v {
        Scalar::Null => Some(f64::NAN),
        Scalar::Str(s) => match s.to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
            "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn convert(dtype: DataType, data: Vec<Scalar>, what: &str) -> Result<TensorData, Error> {
    let bad = |i: usize, v: &Scalar, want: &str| {
        Error::invalid(format!("{what}: data element {i} is {v}, expected {want}"))
    };
    Ok(match dtype {
        DataType::Bool => TensorData::Bool(
            data.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Bool(b) => Ok(*b),
                    v => Err(bad(i, v, "true or false for BOOL")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::U8 => TensorData::U8(
            data.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Int(x) => u8::try_from(*x).map_err(|_| bad(i, v, "a UINT8 in 0..=255")),
                    Scalar::UInt(x) => {
                        u8::try_from(*x).map_err(|_| bad(i, v, "a UINT8 in 0..=255"))
                    }
                    v => Err(bad(i, v, "an integer for UINT8")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::F16 => TensorData::F16(
            data.iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = match v {
                        Scalar::Float(x) => *x,
                        Scalar::Int(x) => *x as f64,
                        Scalar::UInt(x) => *x as f64,
                        v => match non_finite(v) {
                            Some(x) => x,
                            None => return Err(bad(i, v, FLOAT_WANTED_16)),
                        },
                    };
                    if let Some(e) = float_range_error(x, DataType::F16) {
                        return Err(Error::invalid(format!("{what}: data element {i}: {e}")));
                    }
                    Ok(f16::from_f64(x))
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::I32 => TensorData::I32(
            data.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Int(x) => i32::try_from(*x)
                        .map_err(|_| bad(i, v, "an INT32 in -2147483648..=2147483647")),
                    v => Err(bad(i, v, "an integer for INT32")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::I64 => TensorData::I64(
            data.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Int(x) => Ok(*x),
                    v => Err(bad(i, v, "an integer for INT64")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::F32 => TensorData::F32(
            data.iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = match v {
                        Scalar::Float(x) => *x,
                        Scalar::Int(x) => *x as f64,
                        Scalar::UInt(x) => *x as f64,
                        v => match non_finite(v) {
                            Some(x) => x,
                            None => return Err(bad(i, v, FLOAT_WANTED_32)),
                        },
                    };
                    if let Some(e) = float_range_error(x, DataType::F32) {
                        return Err(Error::invalid(format!("{what}: data element {i}: {e}")));
                    }
                    Ok(x as f32)
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::F64 => TensorData::F64(
            data.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Float(x) => Ok(*x),
                    Scalar::Int(x) => Ok(*x as f64),
                    Scalar::UInt(x) => Ok(*x as f64),
                    v => non_finite(v).ok_or_else(|| bad(i, v, FLOAT_WANTED_64)),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => TensorData::Bytes(
            data.into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Str(s) => Ok(s.into_boxed_bytes().into_vec()),
                    v => Err(bad(i, &v, "a string for BYTES")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Decodes an HTTP inference request body. `header_len` is the value of
/// `Inference-Header-Content-Length`, when present.
pub fn decode_request(body: &[u8], header_len: Option<usize>) -> Result<DecodedRequest, Error> {
    let (json, mut binary) = match header_len {
        None => (body, &[][..]),
        Some(n) if n > body.len() => {
            return Err(Error::invalid(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            )));
        }
        Some(n) => body.split_at(n),
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed: RequestJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            Error::invalid(format!("invalid JSON in request body: {inner}"))
        } else {
            Error::invalid(format!("invalid JSON in request body at '{path}': {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| Error::invalid(format!("invalid JSON in request body: {e}")))?;

    let timeout = int_param(&parsed.parameters, TIMEOUT_PARAMETER, "parameters")?
        .map(|us| timeout_from_micros(us, "parameters.timeout"))
        .transpose()?;
    let priority = priority_param(&parsed.parameters)?;
    let default_binary =
        bool_param(&parsed.parameters, "binary_data_output", "parameters")?.unwrap_or(false);
    let parameters = other_parameters(&parsed.parameters);

    let mut inputs = Vec::with_capacity(parsed.inputs.len());
    for (idx, input) in parsed.inputs.into_iter().enumerate() {
        let what = format!("input '{}'", input.name);
        let dtype: DataType = input
            .datatype
            .parse()
            .map_err(|e: Error| Error::invalid(format!("{what}: {}", e.message)))?;
        let shape = request_shape(&input.shape, &what)?;
        let count = element_count(&shape).unwrap_or(usize::MAX);
        let field = format!("inputs[{idx}].parameters");
        let binary_size = int_param(&input.parameters, "binary_data_size", &field)?;
        let data = match (input.data, binary_size) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(format!(
                    "{what}: has both 'data' and parameters.binary_data_size; use one"
                )));
            }
            (None, None) => {
                return Err(Error::invalid(format!(
                    "{what}: no tensor data; expected 'data' or parameters.binary_data_size"
                )));
            }
            (Some(FlatData(values)), None) => {
                if values.len() != count {
                    return Err(Error::invalid(format!(
                        "{what}: shape {} needs {count} elements, 'data' has {}",
                        fmt_shape(&shape),
                        values.len()
                    )));
                }
                convert(dtype, values, &what)?
            }
            (None, Some(size)) => {
                let size = usize::try_from(size).map_err(|_| {
                    Error::invalid(format!("{what}: binary_data_size must be >= 0, got {size}"))
                })?;
                if header_len.is_none() {
                    return Err(Error::invalid(format!(
                        "{what}: parameters.binary_data_size is set but the request has no Inference-Header-Content-Length header"
                    )));
                }
                if size > binary.len() {
                    return Err(Error::invalid(format!(
                        "{what}: binary_data_size is {size} bytes but only {} bytes of binary data remain (truncated body?)",
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                TensorData::from_raw(dtype, mine, count, &what)?
            }
        };
        inputs.push(Tensor {
            name: input.name,
            shape,
            data,
        });
    }
    if !binary.is_empty() {
        return Err(Error::invalid(format!(
            "the body has {} bytes of binary data beyond what the inputs' binary_data_size declare",
            binary.len()
        )));
    }
    let mut outputs = Vec::new();
    let mut per_output = Vec::new();
    for (idx, out) in parsed.outputs.unwrap_or_default().into_iter().enumerate() {
        let field = format!("outputs[{idx}].parameters");
        if out
            .parameters
            .as_ref()
            .is_some_and(|p| p.contains_key("classification"))
        {
            return Err(Error::new(
                ErrorCode::Unimplemented,
                format!(
                    "output '{}': the classification extension is not supported",
                    out.name
                ),
            ));
        }
        per_output.push((
            out.name.clone(),
            bool_param(&out.parameters, "binary_data", &field)?,
        ));
        outputs.push(out.name);
    }
    Ok(DecodedRequest {
        request: InferRequest {
            id: parsed.id,
            inputs,
            outputs,
            ..InferRequest::default()
        },
        timeout,
        priority,
        format: OutputFormat {
            default_binary,
            per_output,
        },
        parameters,
    })
}

/// Parameters that steer the protocol itself; the rest are the caller's and go to the
/// prediction log.
pub const PROTOCOL_PARAMETERS: [&str; 3] =
    [TIMEOUT_PARAMETER, PRIORITY_PARAMETER, "binary_data_output"];

/// The caller's own request parameters as a JSON object, `None` when there are none.
fn other_parameters(params: &Option<Map<String, Value>>) -> Option<String> {
    let params = params.as_ref()?;
    let rest: Map<String, Value> = params
        .iter()
        .filter(|(k, _)| !PROTOCOL_PARAMETERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!rest.is_empty()).then(|| Value::Object(rest).to_string())
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputTensorJson<'a>>,
}

#[derive(Serialize)]
struct OutputTensorJson<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct BinaryParams {
    binary_data_size: usize,
}

struct JsonData<'a>(&'a TensorData);

impl Serialize for JsonData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Bool(v) => v.serialize(s),
            TensorData::U8(v) => v.serialize(s),
            // As the nearest f32: JSON readers have no half type.
            TensorData::F16(v) => s.collect_seq(v.iter().map(|x| x.to_f32())),
            TensorData::I32(v) => v.serialize(s),
            TensorData::I64(v) => v.serialize(s),
            TensorData::F32(v) => v.serialize(s),
            TensorData::F64(v) => v.serialize(s),
            TensorData::Bytes(v) => s.collect_seq(v.iter().map(|b| String::from_utf8_lossy(b))),
        }
    }
}

/// An encoded HTTP response body; `header_len` is set when a binary section follows the JSON.
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

pub fn encode_response(
    resp: &InferResponse,
    format: &OutputFormat,
) -> Result<EncodedResponse, Error> {
    let mut binary = Vec::new();
    let mut outputs = Vec::with_capacity(resp.outputs.len());
    for t in &resp.outputs {
        let as_binary = format.is_binary(&t.name);
        let (parameters, data) = if as_binary {
            let before = binary.len();
            t.data.write_raw(&mut binary);
            (
                Some(BinaryParams {
                    binary_data_size: binary.len() - before,
                }),
                None,
            )
        } else {
            (None, Some(JsonData(&t.data)))
        };
        outputs.push(OutputTensorJson {
            name: &t.name,
            datatype: t.dtype().as_str(),
            shape: &t.shape,
            parameters,
            data,
        });
    }
    let doc = ResponseJson {
        model_name: &resp.model,
        model_version: &resp.version,
        id: resp.id.as_deref(),
        outputs,
    };
    let mut body = Vec::with_capacity(128 + binary.len());
    serde_json::to_writer(&mut body, &doc)
        .map_err(|e| Error::internal(format!("cannot encode response: {e}")))?;
    if binary.is_empty() && !resp.outputs.iter().any(|t| format.is_binary(&t.name)) {
        return Ok(EncodedResponse {
            body,
            header_len: None,
        });
    }
    let header_len = body.len();
    body.extend_from_slice(&binary);
    Ok(EncodedResponse {
        body,
        header_len: Some(header_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        decode_request(body.as_bytes(), None).unwrap_err().message
    }

    #[test]
    fn a_float_beyond_fp32_names_the_input_in_scientific_notation_and_the_range() {
        let e =
            err(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1.5,-1e300,3]}]}"#);
        assert!(
            e.contains("input 'x'")
                && e.contains("data element 1: -1e300 is outside FP32's range (±3.4028235e38)"),
            "{e}"
        );
        assert!(e.len() < 120, "{e}");
        let e = err(r#"{"inputs":[{"name":"h","shape":[1],"datatype":"FP16","data":[7e4]}]}"#);
        assert!(e.contains("70000 is outside FP16's range (±65504)"), "{e}");
        // Other messages that print a float print it short too.
        let e = err(r#"{"inputs":[{"name":"n","shape":[1],"datatype":"INT64","data":[1e200]}]}"#);
        assert!(e.contains("1e200"), "{e}");
    }

    #[test]
    fn decodes_nested_json_data_row_major() {
        let d = decode_request(
            br#"{"id":"r1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,4]]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}],"parameters":{"timeout":1500}}"#,
            None,
        )
        .unwrap();
        assert_eq!(d.request.id.as_deref(), Some("r1"));
        assert_eq!(
            d.request.inputs[0].data,
            TensorData::F32(vec![1.0, 2.0, 3.5, 4.0])
        );
        assert_eq!(d.request.outputs, vec!["y".to_string()]);
        assert!(d.format.is_binary("y"));
        assert_eq!(d.timeout, Some(Duration::from_micros(1500)));
    }

    #[test]
    fn decodes_binary_extension_inputs_in_order() {
        let header = br#"{"inputs":[{"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}},{"name":"b","shape":[1],"datatype":"BOOL","data":[true]},{"name":"c","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&1i32.to_le_bytes());
        body.extend_from_slice(&(-2i32).to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(b"abc");
        let d = decode_request(&body, Some(header.len())).unwrap();
        assert_eq!(d.request.inputs[0].data, TensorData::I32(vec![1, -2]));
        assert_eq!(
            d.request.inputs[2].data,
            TensorData::Bytes(vec![b"abc".to_vec()])
        );
    }

    #[test]
    fn invalid_json_names_the_position_or_field() {
        assert!(err("{").contains("invalid JSON"));
        assert!(
            err(r#"{"inputs":[{"name":"x","shape":"2","datatype":"FP32","data":[1]}]}"#)
                .contains("inputs[0].shape")
        );
        assert!(err(r#"{"outputs":[]}"#).contains("missing field `inputs`"));
    }

    #[test]
    fn element_errors_name_input_index_and_expectation() {
        let m = err(r#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[1,1.5]}]}"#);
        assert!(
            m.contains("input 'x': data element 1 is 1.5, expected an integer for INT32"),
            "{m}"
        );
        let m = err(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#);
        assert!(
            m.contains("shape [3] needs 3 elements, 'data' has 2"),
            "{m}"
        );
        let m = err(r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#);
        assert!(m.contains("negative dimension"), "{m}");
        let m = err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP8","data":[1]}]}"#);
        assert!(m.contains("input 'x': datatype 'FP8'"), "{m}");
        let m =
            err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[3000000000]}]}"#);
        assert!(m.contains("INT32 in"), "{m}");
    }

    #[test]
    fn binary_payload_size_errors() {
        let header = br#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut short = header.to_vec();
        short.extend_from_slice(&[0u8; 5]);
        let m = decode_request(&short, Some(header.len()))
            .unwrap_err()
            .message;
        assert!(m.contains("binary_data_size is 8 bytes but only 5"), "{m}");
        let mut long = header.to_vec();
        long.extend_from_slice(&[0u8; 12]);
        let m = decode_request(&long, Some(header.len()))
            .unwrap_err()
            .message;
        assert!(m.contains("4 bytes of binary data beyond"), "{m}");
        let m = decode_request(header, Some(header.len() + 10))
            .unwrap_err()
            .message;
        assert!(m.contains("Inference-Header-Content-Length is"), "{m}");
    }

    #[test]
    fn encodes_json_and_binary_outputs() {
        let resp = InferResponse {
            model: "m".into(),
            version: "1".into(),
            id: None,
            outputs: vec![
                Tensor::new("p", vec![1, 2], TensorData::F32(vec![0.5, 1.0])).unwrap(),
                Tensor::new("b", vec![1], TensorData::Bool(vec![true])).unwrap(),
            ],
            timing: Default::default(),
        };
        let json = encode_response(&resp, &OutputFormat::default()).unwrap();
        assert!(json.header_len.is_none());
        let v: Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(v["outputs"][0]["data"], serde_json::json!([0.5, 1.0]));
        let fmt = OutputFormat {
            default_binary: false,
            per_output: vec![("p".into(), Some(true))],
        };
        let bin = encode_response(&resp, &fmt).unwrap();
        let n = bin.header_len.unwrap();
        let v: Value = serde_json::from_slice(&bin.body[..n]).unwrap();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert_eq!(&bin.body[n..], &[0, 0, 0, 63, 0, 0, 128, 63]);
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), split in 0usize..300) {
            let _ = decode_request(&body, Some(split));
            let _ = decode_request(&body, None);
        }
    }
}
