//! OIP v2 gRPC codec: typed `contents` or `raw_input_contents` in; `raw_output_contents` out
//! (tritonclient reads numeric outputs only from the raw field).

use std::collections::HashMap;
use std::time::Duration;

use ballast_core::tensor::{element_count, fmt_shape};
use ballast_core::{DataType, Error, Tensor, TensorData};
use ballast_proto::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse, infer_parameter,
    model_infer_response,
};
use ballast_serve::{InferRequest, InferResponse, Priority};

use super::http::request_shape;
use super::{PRIORITY_PARAMETER, TIMEOUT_PARAMETER, timeout_from_micros};

/// A decoded gRPC inference request.
#[derive(Debug)]
pub struct DecodedRequest {
    pub model: String,
    pub version: String,
    pub request: InferRequest,
    pub timeout: Option<Duration>,
    pub priority: Option<Priority>,
    /// The request's other parameters as a JSON object, for the prediction log.
    pub parameters: Option<String>,
}

fn contents_fields(c: &InferTensorContents) -> Vec<&'static str> {
    let mut v = Vec::new();
    if !c.bool_contents.is_empty() {
        v.push("bool_contents");
    }
    if !c.int_contents.is_empty() {
        v.push("int_contents");
    }
    if !c.int64_contents.is_empty() {
        v.push("int64_contents");
    }
    if !c.uint_contents.is_empty() {
        v.push("uint_contents");
    }
    if !c.uint64_contents.is_empty() {
        v.push("uint64_contents");
    }
    if !c.fp32_contents.is_empty() {
        v.push("fp32_contents");
    }
    if !c.fp64_contents.is_empty() {
        v.push("fp64_contents");
    }
    if !c.bytes_contents.is_empty() {
        v.push("bytes_contents");
    }
    v
}

/// The typed `contents` field of `dtype`. FP16 has none in the protocol: it travels only in
/// `raw_input_contents` (so its "field" names that).
fn field_for(dtype: DataType) -> &'static str {
    match dtype {
        DataType::Bool => "bool_contents",
        DataType::U8 => "uint_contents",
        DataType::F16 => "raw_input_contents",
        DataType::I32 => "int_contents",
        DataType::I64 => "int64_contents",
        DataType::F32 => "fp32_contents",
        DataType::F64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
    }
}

fn typed(
    dtype: DataType,
    c: InferTensorContents,
    count: usize,
    what: &str,
) -> Result<TensorData, Error> {
    let want = field_for(dtype);
    if dtype == DataType::F16 {
        return Err(Error::invalid(format!(
            "{what}: FP16 has no typed contents field in the protocol; send it in raw_input_contents"
        )));
    }
    let present = contents_fields(&c);
    if let Some(other) = present.iter().find(|f| **f != want) {
        return Err(Error::invalid(format!(
            "{what}: datatype {dtype} takes contents.{want}, got contents.{other}"
        )));
    }
    let data = match dtype {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::U8 => TensorData::U8(
            c.uint_contents
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    u8::try_from(x).map_err(|_| {
                        Error::invalid(format!(
                            "{what}: contents.uint_contents element {i} is {x}, expected a UINT8 in 0..=255"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::F16 => TensorData::with_capacity(DataType::F16, 0),
        DataType::I32 => TensorData::I32(c.int_contents),
        DataType::I64 => TensorData::I64(c.int64_contents),
        DataType::F32 => TensorData::F32(c.fp32_contents),
        DataType::F64 => TensorData::F64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents),
    };
    if data.len() != count {
        return Err(Error::invalid(format!(
            "{what}: shape needs {count} elements, contents.{want} has {}",
            data.len()
        )));
    }
    Ok(data)
}

fn param_i64(p: &InferParameter, field: &str) -> Result<i64, Error> {
    match &p.parameter_choice {
        Some(infer_parameter::ParameterChoice::Int64Param(v)) => Ok(*v),
        Some(infer_parameter::ParameterChoice::Uint64Param(v)) => {
            i64::try_from(*v).map_err(|_| Error::invalid(format!("{field} is out of range: {v}")))
        }
        other => Err(Error::invalid(format!(
            "{field} must be an int64 parameter, got {other:?}"
        ))),
    }
}

pub fn decode_request(req: ModelInferRequest) -> Result<DecodedRequest, Error> {
    let timeout = req
        .parameters
        .get(TIMEOUT_PARAMETER)
        .map(|p| {
            param_i64(p, "parameters.timeout")
                .and_then(|us| timeout_from_micros(us, "parameters.timeout"))
        })
        .transpose()?;
    let priority = req
        .parameters
        .get(PRIORITY_PARAMETER)
        .map(|p| {
            let field = "parameters.priority";
            match &p.parameter_choice {
                Some(infer_parameter::ParameterChoice::StringParam(s)) => {
                    Priority::parse_name(s, field)
                }
                _ => param_i64(p, field).and_then(|level| Priority::from_level(level, field)),
            }
        })
        .transpose()?;
    let parameters = other_parameters(&req.parameters);
    let raw = req.raw_input_contents;
    if !raw.is_empty() && raw.len() != req.inputs.len() {
        return Err(Error::invalid(format!(
            "raw_input_contents has {} entries for {} inputs; give one per input, in input order",
            raw.len(),
            req.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for (i, input) in req.inputs.into_iter().enumerate() {
        let what = format!("input '{}'", input.name);
        let dtype: DataType = input
            .datatype
            .parse()
            .map_err(|e: Error| Error::invalid(format!("{what}: {}", e.message)))?;
        let shape = request_shape(&input.shape, &what)?;
        let count = element_count(&shape).unwrap_or(usize::MAX);
        let data = match (raw.get(i), input.contents) {
            (Some(_), Some(c)) if !contents_fields(&c).is_empty() => {
                return Err(Error::invalid(format!(
                    "{what}: has typed contents while raw_input_contents is used; use one form for all inputs"
                )));
            }
            (Some(bytes), _) => TensorData::from_raw(dtype, bytes, count, &what)?,
            (None, Some(c)) => typed(dtype, c, count, &what)?,
            (None, None) => {
                if count != 0 {
                    return Err(Error::invalid(format!(
                        "{what}: no tensor data; shape {} needs {count} elements in contents.{} or raw_input_contents",
                        fmt_shape(&shape),
                        field_for(dtype)
                    )));
                }
                TensorData::with_capacity(dtype, 0)
            }
        };
        inputs.push(Tensor {
            name: input.name,
            shape,
            data,
        });
    }
    Ok(DecodedRequest {
        model: req.model_name,
        version: req.model_version,
        request: InferRequest {
            id: (!req.id.is_empty()).then_some(req.id),
            inputs,
            outputs: req.outputs.into_iter().map(|o| o.name).collect(),
            ..InferRequest::default()
        },
        timeout,
        priority,
        parameters,
    })
}

/// The caller's own request parameters (all but `timeout` and `priority`) as a JSON object,
/// `None` when there are none.
fn other_parameters(params: &HashMap<String, InferParameter>) -> Option<String> {
    use infer_parameter::ParameterChoice as P;
    let mut rest: Vec<(&String, serde_json::Value)> = params
        .iter()
        .filter(|(k, _)| k.as_str() != TIMEOUT_PARAMETER && k.as_str() != PRIORITY_PARAMETER)
        .map(|(k, p)| {
            let v = match &p.parameter_choice {
                Some(P::BoolParam(b)) => serde_json::Value::from(*b),
                Some(P::Int64Param(i)) => serde_json::Value::from(*i),
                Some(P::Uint64Param(u)) => serde_json::Value::from(*u),
                Some(P::DoubleParam(d)) => serde_json::Value::from(*d),
                Some(P::StringParam(s)) => serde_json::Value::from(s.as_str()),
                None => serde_json::Value::Null,
            };
            (k, v)
        })
        .collect();
    if rest.is_empty() {
        return None;
    }
    rest.sort_by(|a, b| a.0.cmp(b.0));
    let map: serde_json::Map<String, serde_json::Value> =
        rest.into_iter().map(|(k, v)| (k.clone(), v)).collect();
    Some(serde_json::Value::Object(map).to_string())
}

pub fn encode_response(resp: InferResponse) -> ModelInferResponse {
    let mut outputs = Vec::with_capacity(resp.outputs.len());
    let mut raw = Vec::with_capacity(resp.outputs.len());
    for t in resp.outputs {
        let mut bytes = Vec::with_capacity(t.data.raw_byte_size());
        t.data.write_raw(&mut bytes);
        raw.push(bytes.into());
        outputs.push(model_infer_response::InferOutputTensor {
            name: t.name,
            datatype: t.data.dtype().as_str().to_string(),
            shape: t.shape.iter().map(|&d| d as i64).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
    }
    ModelInferResponse {
        model_name: resp.model.to_string(),
        model_version: resp.version.to_string(),
        id: resp.id.unwrap_or_default(),
        parameters: HashMap::new(),
        outputs,
        raw_output_contents: raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::inference::model_infer_request::InferInputTensor;

    fn input(
        name: &str,
        dtype: &str,
        shape: Vec<i64>,
        contents: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: dtype.into(),
            shape,
            parameters: HashMap::new(),
            contents,
        }
    }

    #[test]
    fn decodes_typed_and_raw_contents() {
        let req = ModelInferRequest {
            inputs: vec![input(
                "x",
                "FP32",
                vec![1, 2],
                Some(InferTensorContents {
                    fp32_contents: vec![1.0, 2.0],
                    ..Default::default()
                }),
            )],
            ..Default::default()
        };
        let d = decode_request(req).unwrap();
        assert_eq!(d.request.inputs[0].data, TensorData::F32(vec![1.0, 2.0]));

        let req = ModelInferRequest {
            inputs: vec![input("x", "INT64", vec![2], None)],
            raw_input_contents: vec![[1i64.to_le_bytes(), 7i64.to_le_bytes()].concat().into()],
            ..Default::default()
        };
        assert_eq!(
            decode_request(req).unwrap().request.inputs[0].data,
            TensorData::I64(vec![1, 7])
        );
    }

    #[test]
    fn rejects_mismatched_contents_fields_and_counts() {
        let req = ModelInferRequest {
            inputs: vec![input(
                "x",
                "FP32",
                vec![2],
                Some(InferTensorContents {
                    int64_contents: vec![1, 2],
                    ..Default::default()
                }),
            )],
            ..Default::default()
        };
        let m = decode_request(req).unwrap_err().message;
        assert!(
            m.contains(
                "input 'x': datatype FP32 takes contents.fp32_contents, got contents.int64_contents"
            ),
            "{m}"
        );

        let req = ModelInferRequest {
            inputs: vec![
                input("x", "FP32", vec![2], None),
                input("y", "FP32", vec![1], None),
            ],
            raw_input_contents: vec![vec![0u8; 8].into()],
            ..Default::default()
        };
        let m = decode_request(req).unwrap_err().message;
        assert!(
            m.contains("raw_input_contents has 1 entries for 2 inputs"),
            "{m}"
        );

        let req = ModelInferRequest {
            inputs: vec![input("x", "FP32", vec![3], None)],
            raw_input_contents: vec![vec![0u8; 8].into()],
            ..Default::default()
        };
        let m = decode_request(req).unwrap_err().message;
        assert!(m.contains("expected 12 bytes"), "{m}");
    }
}
