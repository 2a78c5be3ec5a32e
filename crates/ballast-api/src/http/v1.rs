//! The KServe V1 protocol, for users of KServe's sklearn and xgboost servers:
//! `GET /v1/models/{m}` (`{"name", "ready"}`), `POST /v1/models/{m}:predict` with
//! `{"instances": [...]}` → `{"predictions": [...]}`. `:explain` answers 501.
//!
//! Instances are rows: nested arrays for a model with one input (`[[5.1, 3.5, 1.4, 0.2], ...]`)
//! or objects keyed by input name for several. Each is converted to the input's declared
//! datatype. `predictions` holds the model's first output per row — for a scikit-learn
//! classifier exported with skl2onnx its label, which is what `predict()` returned under KServe;
//! for XGBoost the prediction. The request runs through the same entry as the V2 endpoints
//! (admission, deadlines, priority headers, metrics).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use ballast_core::{DataType, Error, ErrorCode, Tensor, TensorData, TensorSpec};
use ballast_serve::entry::{self, Call, Decoded};
use ballast_serve::{InferRequest, Protocol, RequestContext};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::ApiState;

pub async fn model_status(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let mv = state.repository()?.get(&model, None)?;
    Ok(Json(json!({ "name": &*mv.name, "ready": mv.is_ready() })))
}

pub async fn model_verb(
    State(state): State<ApiState>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((model, verb)) = target.rsplit_once(':') else {
        return ApiError(Error::not_found(format!(
            "POST /v1/models/{target}: expected /v1/models/<model>:predict"
        )))
        .into_response();
    };
    match verb {
        "predict" => predict(state, model.to_string(), headers, body).await,
        "explain" => ApiError(Error::new(
            ErrorCode::Unimplemented,
            "ballast does not implement :explain",
        ))
        .into_response(),
        other => ApiError(Error::not_found(format!(
            "unknown verb ':{other}'; the KServe V1 protocol here serves :predict"
        )))
        .into_response(),
    }
}

async fn predict(state: ApiState, model: String, headers: HeaderMap, body: Body) -> Response {
    let lookup = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let mut ctx = match RequestContext::from_headers(Protocol::Http, lookup) {
        Ok(ctx) => ctx,
        Err(e) => return ApiError(e).into_response(),
    };
    let result = match state.repository() {
        Ok(repo) => {
            // The default version's signature shapes the instances (held, not copied).
            let version = repo.get(&model, None);
            let limit = state.config.max_request_bytes;
            let headers = &headers;
            let decode = async move {
                let mv = version?;
                let bytes = super::infer::read_body(body, headers, limit).await?;
                decode(&bytes, &mv.signature.inputs)
            };
            let call = Call {
                model: &model,
                version: None,
                rows: None,
            };
            entry::serve(repo, &state.door, &mut ctx, call, lookup, decode).await
        }
        Err(e) => Err(e),
    };
    let mut response = match result {
        Ok(served) => match predictions(&served.response.outputs) {
            Ok(p) => Json(json!({ "predictions": p })).into_response(),
            Err(e) => ApiError(e).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    };
    super::infer::echo_request_id(&mut response, &ctx);
    response
}

fn decode(bytes: &[u8], specs: &[TensorSpec]) -> Result<Decoded<()>, Error> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("request body is not JSON: {e}")))?;
    let instances = match body.get("instances") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Error::invalid("instances must be an array of rows")),
        None => {
            return Err(Error::invalid(
                "the KServe V1 body needs \"instances\": [row, ...] (the \"inputs\" form is the V2 protocol: POST /v2/models/{m}/infer)",
            ));
        }
    };
    if instances.is_empty() {
        return Err(Error::invalid("instances is empty"));
    }
    let mut tensors = Vec::with_capacity(specs.len());
    for spec in specs {
        let rows: Vec<&Value> = if instances.iter().all(Value::is_object) {
            instances
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    row.get(&spec.name).ok_or_else(|| {
                        Error::invalid(format!("instances[{i}] has no input '{}'", spec.name))
                    })
                })
                .collect::<Result<_, _>>()?
        } else if specs.len() == 1 {
            instances.iter().collect()
        } else {
            return Err(Error::invalid(format!(
                "the model has {} inputs ({}): each instance must be an object keyed by input name",
                specs.len(),
                specs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        tensors.push(tensor(spec, &rows)?);
    }
    Ok(Decoded {
        request: InferRequest {
            inputs: tensors,
            ..InferRequest::default()
        },
        timeout: None,
        priority: None,
        render: (),
        parameters: None,
    })
}

/// Rows of nested arrays as one tensor `[rows, ...]` of the spec's datatype.
fn tensor(spec: &TensorSpec, rows: &[&Value]) -> Result<Tensor, Error> {
    let what = |i: usize| format!("instances[{i}] for input '{}'", spec.name);
    let mut inner: Option<Vec<usize>> = None;
    let mut flat: Vec<&Value> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut shape = Vec::new();
        flatten(row, 0, &mut shape, &mut flat)
            .map_err(|e| Error::invalid(format!("{}: {e}", what(i))))?;
        match &inner {
            None => inner = Some(shape),
            Some(s) if *s == shape => {}
            Some(s) => {
                return Err(Error::invalid(format!(
                    "{}: shape {shape:?} differs from the first instance's {s:?}",
                    what(i)
                )));
            }
        }
    }
    let mut shape = vec![rows.len()];
    shape.extend(inner.unwrap_or_default());
    let bad = |i: usize, v: &Value| {
        Error::invalid(format!(
            "input '{}': element {i} is {v}, expected {}",
            spec.name, spec.dtype
        ))
    };
    let num = |i: usize, v: &Value| -> Result<f64, Error> {
        match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| bad(i, v)),
            Value::Null => Ok(f64::NAN),
            Value::Bool(b) => Ok(f64::from(u8::from(*b))),
            _ => Err(bad(i, v)),
        }
    };
    let int = |i: usize, v: &Value| -> Result<i64, Error> { v.as_i64().ok_or_else(|| bad(i, v)) };
    let data = match spec.dtype {
        DataType::F32 => TensorData::F32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = num(i, v)?;
                    match ballast_core::tensor::float_range_error(x, DataType::F32) {
                        Some(e) => Err(Error::invalid(format!(
                            "input '{}': element {i}: {e}",
                            spec.name
                        ))),
                        None => Ok(x as f32),
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::F64 => TensorData::F64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v))
                .collect::<Result<_, _>>()?,
        ),
        DataType::F16 => TensorData::F16(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v).map(ballast_core::tensor::f16::from_f64))
                .collect::<Result<_, _>>()?,
        ),
        DataType::U8 => TensorData::U8(
            flat.iter()
                .enumerate()
                .map(|(i, v)| int(i, v).and_then(|x| u8::try_from(x).map_err(|_| bad(i, v))))
                .collect::<Result<_, _>>()?,
        ),
        DataType::I64 => TensorData::I64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| int(i, v))
                .collect::<Result<_, _>>()?,
        ),
        DataType::I32 => TensorData::I32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| int(i, v).and_then(|x| i32::try_from(x).map_err(|_| bad(i, v))))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bool => TensorData::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_bool().ok_or_else(|| bad(i, v)))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => TensorData::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.as_bytes().to_vec()),
                    other => Err(bad(i, other)),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Tensor::new(spec.name.clone(), shape, data)
}

fn flatten<'a>(
    v: &'a Value,
    depth: usize,
    shape: &mut Vec<usize>,
    out: &mut Vec<&'a Value>,
) -> Result<(), String> {
    if depth > 16 {
        return Err("nested deeper than 16 levels".into());
    }
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return Err("ragged array (rows of different lengths)".into());
            }
            for item in items {
                flatten(item, depth + 1, shape, out)?;
            }
            Ok(())
        }
        Value::Object(_) => Err("an object where a value or array was expected".into()),
        scalar => {
            if shape.len() > depth {
                return Err("ragged array (a value where an array was expected)".into());
            }
            out.push(scalar);
            Ok(())
        }
    }
}

/// The first output, one JSON value per row (nested arrays for the rest of its shape).
fn predictions(outputs: &[Tensor]) -> Result<Vec<Value>, Error> {
    let Some(t) = outputs.first() else {
        return Err(Error::internal("the model returned no outputs"));
    };
    let values: Vec<Value> = match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| json_f64(f64::from(x))).collect(),
        TensorData::F64(v) => v.iter().map(|&x| json_f64(x)).collect(),
        TensorData::F16(v) => v.iter().map(|&x| json_f64(f64::from(x))).collect(),
        TensorData::U8(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::Bytes(v) => v
            .iter()
            .map(|b| json!(String::from_utf8_lossy(b)))
            .collect(),
    };
    let rows = t.shape.first().copied().unwrap_or(1).max(1);
    let inner: Vec<usize> = t.shape.iter().skip(1).copied().collect();
    let per_row = values.len() / rows;
    Ok(values
        .chunks(per_row.max(1))
        .map(|chunk| nest(chunk, &inner))
        .collect())
}

fn json_f64(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] => values.first().cloned().unwrap_or(Value::Null),
        [_] if shape[0] == 1 && values.len() == 1 => Value::Array(values.to_vec()),
        [_] => Value::Array(values.to_vec()),
        [_, rest @ ..] => {
            let step: usize = rest.iter().product::<usize>().max(1);
            Value::Array(values.chunks(step).map(|c| nest(c, rest)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_become_a_tensor_and_outputs_become_predictions() {
        let spec = TensorSpec::new("X", DataType::F32, vec![-1, 3]);
        let body = br#"{"instances": [[1, 2, 3], [4, 5.5, null]]}"#;
        let d = decode(body, std::slice::from_ref(&spec)).unwrap();
        let t = &d.request.inputs[0];
        assert_eq!(t.shape, vec![2, 3]);
        let TensorData::F32(v) = &t.data else {
            panic!()
        };
        assert_eq!(&v[..5], &[1.0, 2.0, 3.0, 4.0, 5.5]);
        assert!(v[5].is_nan());
        let err = decode(
            br#"{"instances": [[1, 2, 3], [4, 5]]}"#,
            std::slice::from_ref(&spec),
        )
        .err()
        .unwrap();
        assert!(err.message.contains("instances[1]"), "{}", err.message);
        let err = decode(br#"{"inputs": []}"#, std::slice::from_ref(&spec))
            .err()
            .unwrap();
        assert!(err.message.contains("instances"), "{}", err.message);

        let labels = Tensor::new("label", vec![2], TensorData::I64(vec![1, 0])).unwrap();
        assert_eq!(predictions(&[labels]).unwrap(), vec![json!(1), json!(0)]);
        let probs =
            Tensor::new("p", vec![2, 2], TensorData::F64(vec![0.25, 0.75, 0.5, 0.5])).unwrap();
        assert_eq!(
            predictions(&[probs]).unwrap(),
            vec![json!([0.25, 0.75]), json!([0.5, 0.5])]
        );
    }
}
