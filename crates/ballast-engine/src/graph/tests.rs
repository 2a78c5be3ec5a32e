use super::*;

fn attr_floats(name: &str, v: &[f32]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        floats: v.to_vec(),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_str(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_node"),
        domain: "ai.onnx.ml".into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn float_input(name: &str, cols: i64) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        Dimension {
                            denotation: String::new(),
                            value: None,
                        },
                        Dimension {
                            denotation: String::new(),
                            value: Some(dimension::Value::DimValue(cols)),
                        },
                    ],
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

fn int64_vector(name: &str) -> pb::ValueInfoProto {
    let mut v = float_input(name, 1);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = 7;
        if let Some(s) = t.shape.as_mut() {
            s.dim.truncate(1);
        }
    }
    v
}

fn untyped(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
) -> pb::ModelProto {
    pb::ModelProto {
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            node: nodes,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32s(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::F32(v) => v,
        other => panic!("expected FP32, got {:?}", other.dtype()),
    }
}

/// Scaler → binary LinearClassifier with one coefficient row and two labels: ONNX Runtime's
/// special case scores `[1 - s, s]` on the raw score and labels by its sign; ZipMap serves
/// the scores under its own name.
#[test]
fn scaler_then_binary_linear_classifier_follows_onnx_runtime() {
    let m = model(
        vec![
            node(
                "Scaler",
                &["X"],
                &["scaled"],
                vec![
                    attr_floats("offset", &[1.0, 0.0]),
                    attr_floats("scale", &[2.0, 1.0]),
                ],
            ),
            node(
                "LinearClassifier",
                &["scaled"],
                &["label", "scores"],
                vec![
                    attr_floats("coefficients", &[0.5, -1.0]),
                    attr_floats("intercepts", &[0.25]),
                    attr_ints("classlabels_ints", &[3, 7]),
                ],
            ),
            node(
                "ZipMap",
                &["scores"],
                &["probs"],
                vec![attr_ints("classlabels_int64s", &[3, 7])],
            ),
        ],
        vec![float_input("X", 2)],
        vec![int64_vector("label"), untyped("probs")],
    );
    let backend = GraphBackend::from_model(&m).expect("loads");
    let sig = backend.signature();
    assert_eq!(sig.outputs[1].name, "probs");
    assert_eq!(sig.outputs[1].dtype, DataType::F32);
    assert_eq!(sig.outputs[1].shape, vec![-1, 2]);
    // Row 1: scaled (2, 0) → 0.5*2 + 0.25 = 1.25 > 0 → label 7; row 2: scaled (0, 3) →
    // -3 + 0.25 = -2.75 → label 3.
    let x = Tensor::new("X", vec![2, 2], TensorData::F32(vec![2.0, 0.0, 1.0, 3.0])).unwrap();
    let out = backend.infer(vec![x]).expect("runs");
    assert_eq!(out[0].data, TensorData::I64(vec![7, 3]));
    assert_eq!(out[1].shape, vec![2, 2]);
    assert_eq!(f32s(&out[1]), &[1.0 - 1.25, 1.25, 1.0 + 2.75, -2.75]);
}

#[test]
fn imputer_with_nan_makes_nan_mean_missing() {
    let m = model(
        vec![node(
            "Imputer",
            &["X"],
            &["Y"],
            vec![
                attr_floats("imputed_value_floats", &[10.0, 20.0]),
                pb::AttributeProto {
                    name: "replaced_value_float".into(),
                    f: f32::NAN,
                    ..Default::default()
                },
            ],
        )],
        vec![float_input("X", 2)],
        vec![float_input("Y", 2)],
    );
    let backend = GraphBackend::from_model(&m).expect("loads");
    assert!(backend.nan_is_missing());
    let x = Tensor::new(
        "X",
        vec![2, 2],
        TensorData::F32(vec![f32::NAN, 1.0, 2.0, f32::NAN]),
    )
    .unwrap();
    let out = backend.infer(vec![x]).unwrap();
    assert_eq!(f32s(&out[0]), &[10.0, 1.0, 2.0, 20.0]);
}

#[test]
fn unsupported_operator_is_named() {
    let m = model(
        vec![node("SVMClassifier", &["X"], &["Y"], vec![])],
        vec![float_input("X", 2)],
        vec![untyped("Y")],
    );
    let err = GraphBackend::from_model(&m).unwrap_err();
    assert!(err.contains("SVMClassifier"), "{err}");
}

#[test]
fn normalizer_leaves_zero_rows_and_keeps_signs() {
    let m = model(
        vec![node(
            "Normalizer",
            &["X"],
            &["Y"],
            vec![attr_str("norm", "L2")],
        )],
        vec![float_input("X", 2)],
        vec![float_input("Y", 2)],
    );
    let backend = GraphBackend::from_model(&m).unwrap();
    let x = Tensor::new("X", vec![2, 2], TensorData::F32(vec![-3.0, 4.0, 0.0, 0.0])).unwrap();
    let out = backend.infer(vec![x]).unwrap();
    assert_eq!(f32s(&out[0]), &[-0.6, 0.8, 0.0, 0.0]);
}

#[test]
fn broadcasting_follows_numpy() {
    let a = Value::new(vec![2, 3], TensorData::F32(vec![1., 2., 3., 4., 5., 6.])).unwrap();
    let row = Value::new(vec![1, 3], TensorData::F32(vec![10., 20., 30.])).unwrap();
    let col = Value::new(vec![2, 1], TensorData::F32(vec![100., 200.])).unwrap();
    let sum = ops::Op::Binary(ops::Bin::Add)
        .run(&[Some(&a), Some(&row)])
        .unwrap();
    assert_eq!(
        sum[0].data,
        TensorData::F32(vec![11., 22., 33., 14., 25., 36.])
    );
    let sum = ops::Op::Binary(ops::Bin::Add)
        .run(&[Some(&col), Some(&a)])
        .unwrap();
    assert_eq!(
        sum[0].data,
        TensorData::F32(vec![101., 102., 103., 204., 205., 206.])
    );
    let bad = Value::new(vec![2], TensorData::F32(vec![1., 2.])).unwrap();
    let err = ops::Op::Binary(ops::Bin::Add)
        .run(&[Some(&a), Some(&bad)])
        .err()
        .unwrap();
    assert!(err.contains("do not broadcast"), "{err}");
}

#[test]
fn matmul_reshape_and_argmax() {
    let a = Value::new(vec![2, 2], TensorData::F32(vec![1., 2., 3., 4.])).unwrap();
    let b = Value::new(vec![2, 3], TensorData::F32(vec![1., 0., 2., 0., 1., -1.])).unwrap();
    let p = ops::Op::MatMul
        .run(&[Some(&a), Some(&b)])
        .unwrap()
        .remove(0);
    assert_eq!(p.shape, vec![2, 3]);
    assert_eq!(p.data, TensorData::F32(vec![1., 2., 0., 3., 4., 2.]));
    let arg = ops::Op::ArgMax {
        axis: 1,
        keepdims: true,
        last: false,
        max: true,
    }
    .run(&[Some(&p)])
    .unwrap()
    .remove(0);
    assert_eq!(
        (arg.shape.clone(), arg.data.clone()),
        (vec![2, 1], TensorData::I64(vec![1, 1]))
    );
    let shape = Value::new(vec![1], TensorData::I64(vec![-1])).unwrap();
    let flat = ops::Op::Reshape { allowzero: false }
        .run(&[Some(&arg), Some(&shape)])
        .unwrap()
        .remove(0);
    assert_eq!(flat.shape, vec![2]);
}
