//! Tensors as they travel through ballast: a name, a shape and a flat, row-major buffer of one
//! of the Open Inference Protocol datatypes. Batching concatenates and splits along dimension 0.

use std::fmt;
use std::str::FromStr;

pub use half::f16;

use crate::error::Error;

/// The OIP v2 datatypes ballast carries end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U8,
    I32,
    I64,
    F16,
    F32,
    F64,
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 8] = [
        DataType::Bool,
        DataType::U8,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The protocol name (`FP32`, `INT64`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Numbers (every type but BOOL and BYTES): conversions between them are defined, if
    /// not always lossless.
    pub const fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::Bytes)
    }

    /// Bytes per element in the raw little-endian encoding; `None` for variable-size BYTES.
    pub const fn element_size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::U8 => Some(1),
            DataType::F16 => Some(2),
            DataType::I32 | DataType::F32 => Some(4),
            DataType::I64 | DataType::F64 => Some(8),
            DataType::Bytes => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "BOOL" => DataType::Bool,
            "UINT8" => DataType::U8,
            "INT32" => DataType::I32,
            "INT64" => DataType::I64,
            "FP16" => DataType::F16,
            "FP32" => DataType::F32,
            "FP64" => DataType::F64,
            "BYTES" => DataType::Bytes,
            other => {
                let known = ["UINT16", "UINT32", "UINT64", "INT8", "INT16", "BF16"];
                let why = if known.contains(&other) {
                    "is a valid OIP datatype that ballast does not serve yet"
                } else {
                    "is not an OIP datatype"
                };
                return Err(Error::invalid(format!(
                    "datatype '{other}' {why}; expected one of BOOL, UINT8, INT32, INT64, FP16, FP32, FP64, BYTES"
                )));
            }
        })
    }
}

/// A flat, row-major buffer of one datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

macro_rules! each_variant {
    ($value:expr, $v:ident => $body:expr) => {
        match $value {
            TensorData::Bool($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// `$body` (a `Vec` of the same element type) for whichever variant `$value` holds, wrapped
/// back in that variant: element-type-generic code (gathers, slices) written once.
#[macro_export]
macro_rules! map_variant {
    ($value:expr, $v:ident => $body:expr) => {
        match $value {
            $crate::TensorData::Bool($v) => $crate::TensorData::Bool($body),
            $crate::TensorData::U8($v) => $crate::TensorData::U8($body),
            $crate::TensorData::I32($v) => $crate::TensorData::I32($body),
            $crate::TensorData::I64($v) => $crate::TensorData::I64($body),
            $crate::TensorData::F16($v) => $crate::TensorData::F16($body),
            $crate::TensorData::F32($v) => $crate::TensorData::F32($body),
            $crate::TensorData::F64($v) => $crate::TensorData::F64($body),
            $crate::TensorData::Bytes($v) => $crate::TensorData::Bytes($body),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F16(_) => DataType::F16,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        each_variant!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty buffer of `dtype` with room for `capacity` elements.
    pub fn with_capacity(dtype: DataType, capacity: usize) -> Self {
        match dtype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DataType::F16 => TensorData::F16(Vec::with_capacity(capacity)),
            DataType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Every element as f64 (BOOL as 0/1); `None` for BYTES. For comparisons and summaries,
    /// not for the request path.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        Some(match self {
            TensorData::Bool(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
            TensorData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            // Beyond 2^53 the nearest f64: fine for what this is for.
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::Bytes(_) => return None,
        })
    }

    /// `n` zeros (false, empty strings) of `dtype`.
    pub fn zeros(dtype: DataType, n: usize) -> Self {
        match dtype {
            DataType::Bool => TensorData::Bool(vec![false; n]),
            DataType::U8 => TensorData::U8(vec![0; n]),
            DataType::I32 => TensorData::I32(vec![0; n]),
            DataType::I64 => TensorData::I64(vec![0; n]),
            DataType::F16 => TensorData::F16(vec![f16::ZERO; n]),
            DataType::F32 => TensorData::F32(vec![0.0; n]),
            DataType::F64 => TensorData::F64(vec![0.0; n]),
            DataType::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
        }
    }

    /// Appends `other` (same datatype) to `self`. Returns false on a datatype mismatch.
    pub fn extend_from(&mut self, other: &TensorData) -> bool {
        match (self, other) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
            (TensorData::U8(a), TensorData::U8(b)) => a.extend_from_slice(b),
            (TensorData::F16(a), TensorData::F16(b)) => a.extend_from_slice(b),
            (TensorData::I32(a), TensorData::I32(b)) => a.extend_from_slice(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend_from_slice(b),
            (TensorData::F32(a), TensorData::F32(b)) => a.extend_from_slice(b),
            (TensorData::F64(a), TensorData::F64(b)) => a.extend_from_slice(b),
            (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// A copy of elements `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        map_variant!(self, v => v[start..end].to_vec())
    }

    /// Size of the raw encoding in bytes (BYTES elements carry a 4-byte length prefix).
    pub fn raw_byte_size(&self) -> usize {
        match self {
            TensorData::Bytes(v) => v.iter().map(|b| 4 + b.len()).sum(),
            other => other.len() * other.dtype().element_size().unwrap_or(0),
        }
    }

    /// Appends the raw little-endian, row-major encoding (the OIP binary / gRPC raw format).
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        out.reserve(self.raw_byte_size());
        match self {
            TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
            TensorData::U8(v) => out.extend_from_slice(v),
            TensorData::F16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Bytes(v) => {
                for b in v {
                    // Lengths above u32::MAX cannot be produced: request limits are far smaller.
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }

    /// Decodes the raw encoding of `count` elements. `what` names the tensor in error messages.
    pub fn from_raw(dtype: DataType, raw: &[u8], count: usize, what: &str) -> Result<Self, Error> {
        if let Some(size) = dtype.element_size() {
            let expected = count.checked_mul(size).ok_or_else(|| {
                Error::invalid(format!("{what}: shape has too many elements ({count})"))
            })?;
            if raw.len() != expected {
                return Err(Error::invalid(format!(
                    "{what}: expected {expected} bytes of {dtype} data for {count} elements, got {} bytes",
                    raw.len()
                )));
            }
        }
        fn chunks<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            raw.chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        Ok(match dtype {
            DataType::Bool => {
                if let Some(pos) = raw.iter().position(|&b| b > 1) {
                    return Err(Error::invalid(format!(
                        "{what}: BOOL element {pos} is byte {}, expected 0 or 1",
                        raw[pos]
                    )));
                }
                TensorData::Bool(raw.iter().map(|&b| b == 1).collect())
            }
            DataType::U8 => TensorData::U8(raw.to_vec()),
            DataType::F16 => TensorData::F16(chunks(raw, f16::from_le_bytes)),
            DataType::I32 => TensorData::I32(chunks(raw, i32::from_le_bytes)),
            DataType::I64 => TensorData::I64(chunks(raw, i64::from_le_bytes)),
            DataType::F32 => TensorData::F32(chunks(raw, f32::from_le_bytes)),
            DataType::F64 => TensorData::F64(chunks(raw, f64::from_le_bytes)),
            DataType::Bytes => {
                let mut out = Vec::with_capacity(count.min(raw.len() / 4 + 1));
                let mut rest = raw;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(Error::invalid(format!(
                            "{what}: BYTES element {} has a truncated 4-byte length prefix ({} bytes left)",
                            out.len(),
                            rest.len()
                        )));
                    }
                    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    rest = &rest[4..];
                    if len > rest.len() {
                        return Err(Error::invalid(format!(
                            "{what}: BYTES element {} declares {len} bytes but only {} remain",
                            out.len(),
                            rest.len()
                        )));
                    }
                    out.push(rest[..len].to_vec());
                    rest = &rest[len..];
                }
                if out.len() != count {
                    return Err(Error::invalid(format!(
                        "{what}: shape needs {count} BYTES elements, got {}",
                        out.len()
                    )));
                }
                TensorData::Bytes(out)
            }
        })
    }

    /// Index and value of the first float element for which `bad` holds (always `None` for
    /// non-float types).
    pub fn first_non_finite_where(&self, bad: impl Fn(f64) -> bool) -> Option<(usize, f64)> {
        match self {
            TensorData::F16(v) => v
                .iter()
                .position(|&x| !x.is_finite() && bad(f64::from(x)))
                .map(|i| (i, f64::from(v[i]))),
            TensorData::F32(v) => v
                .iter()
                .position(|&x| !x.is_finite() && bad(f64::from(x)))
                .map(|i| (i, f64::from(v[i]))),
            TensorData::F64(v) => v
                .iter()
                .position(|&x| !x.is_finite() && bad(x))
                .map(|i| (i, v[i])),
            _ => None,
        }
    }

    /// Index of the first NaN or infinite element, if any (always `None` for non-float types).
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        match self {
            TensorData::F16(v) => v
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| (i, f64::from(v[i]))),
            TensorData::F32(v) => v
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| (i, f64::from(v[i]))),
            TensorData::F64(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i])),
            _ => None,
        }
    }
}

/// A named tensor with a concrete shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that the shape's element count matches the data.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Self, Error> {
        let name = name.into();
        let count = element_count(&shape)
            .ok_or_else(|| Error::invalid(format!("tensor '{name}': shape {shape:?} overflows")))?;
        if count != data.len() {
            return Err(Error::invalid(format!(
                "tensor '{name}': shape {} needs {count} elements, got {}",
                fmt_shape(&shape),
                data.len()
            )));
        }
        Ok(Self { name, shape, data })
    }

    pub fn dtype(&self) -> DataType {
        self.data.dtype()
    }

    /// Rows along dimension 0 (1 for scalars).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row along dimension 0.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// Product of the dimensions, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A number as error messages print it: plainly at everyday magnitudes, in scientific notation
/// beyond (`1e300`, not its 301 digits; `2.5e-12`, not a row of zeros).
pub fn fmt_number(x: f64) -> String {
    let a = x.abs();
    if x.is_finite() && a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Why `x` cannot be narrowed to `datatype` (FP32 or FP16) without turning into infinity, as
/// `3.4e39 is outside FP32's range (±3.4028235e38)`; `None` when it can (non-finite values
/// are the validation's to judge). Other datatypes always answer `None`.
pub fn float_range_error(x: f64, datatype: DataType) -> Option<String> {
    // The bound printed as its own type prints it (3.4028235e38, not f64's 3.4028234663852886e38).
    let (max, shown) = match datatype {
        DataType::F32 => (f64::from(f32::MAX), format!("{:e}", f32::MAX)),
        DataType::F16 => (f64::from(f16::MAX), f16::MAX.to_string()),
        _ => return None,
    };
    (x.is_finite() && x.abs() > max)
        .then(|| format!("{} is outside {datatype}'s range (±{shown})", fmt_number(x)))
}

/// `[2,3]` style rendering used in error messages.
pub fn fmt_shape<T: fmt::Display>(shape: &[T]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_float_beyond_fp32_is_named_in_scientific_notation_with_the_range() {
        assert_eq!(
            float_range_error(3.4e39, DataType::F32).as_deref(),
            Some("3.4e39 is outside FP32's range (±3.4028235e38)")
        );
        let huge = float_range_error(-1e300, DataType::F32).unwrap_or_default();
        assert_eq!(huge, "-1e300 is outside FP32's range (±3.4028235e38)");
        assert!(huge.len() < 60, "{huge}");
        assert_eq!(
            float_range_error(70000.0, DataType::F16).as_deref(),
            Some("70000 is outside FP16's range (±65504)")
        );
        for fine in [f64::from(f32::MAX), -1.5, 0.0, f64::NAN, f64::INFINITY] {
            assert_eq!(float_range_error(fine, DataType::F32), None, "{fine}");
        }
        assert_eq!(float_range_error(1e300, DataType::F64), None);
        assert_eq!(fmt_number(0.25), "0.25");
        assert_eq!(fmt_number(2.5e-12), "2.5e-12");
    }

    #[test]
    fn unknown_datatype_names_the_value_and_the_choices() {
        let err = "FLOAT".parse::<DataType>().unwrap_err();
        assert!(err.message.contains("'FLOAT'"), "{}", err.message);
        assert!(err.message.contains("FP32"), "{}", err.message);
        let err = "BF16".parse::<DataType>().unwrap_err();
        assert!(
            err.message.contains("does not serve yet"),
            "{}",
            err.message
        );
    }

    #[test]
    fn shape_mismatch_is_rejected_with_counts() {
        let err = Tensor::new("x", vec![2, 3], TensorData::F32(vec![0.0; 5])).unwrap_err();
        assert!(
            err.message.contains("needs 6 elements, got 5"),
            "{}",
            err.message
        );
    }

    #[test]
    fn raw_decoding_rejects_truncated_payloads() {
        let err = TensorData::from_raw(DataType::F32, &[0u8; 7], 2, "input 'x'").unwrap_err();
        assert!(err.message.contains("expected 8 bytes"), "{}", err.message);
        let err =
            TensorData::from_raw(DataType::Bytes, &[5, 0, 0, 0, b'a'], 1, "input 's'").unwrap_err();
        assert!(err.message.contains("declares 5 bytes"), "{}", err.message);
        let err = TensorData::from_raw(DataType::Bool, &[0, 2], 2, "input 'b'").unwrap_err();
        assert!(err.message.contains("expected 0 or 1"), "{}", err.message);
    }

    fn any_data() -> impl Strategy<Value = TensorData> {
        prop_oneof![
            proptest::collection::vec(any::<bool>(), 0..20).prop_map(TensorData::Bool),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(TensorData::U8),
            proptest::collection::vec(any::<i32>(), 0..20).prop_map(TensorData::I32),
            proptest::collection::vec(-6e4f32..6e4, 0..20)
                .prop_map(|v| TensorData::F16(v.into_iter().map(f16::from_f32).collect())),
            proptest::collection::vec(any::<i64>(), 0..20).prop_map(TensorData::I64),
            proptest::collection::vec(-1e6f32..1e6, 0..20).prop_map(TensorData::F32),
            proptest::collection::vec(-1e6f64..1e6, 0..20).prop_map(TensorData::F64),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..20)
                .prop_map(TensorData::Bytes),
        ]
    }

    proptest! {
        #[test]
        fn raw_encoding_round_trips(data in any_data()) {
            let mut raw = Vec::new();
            data.write_raw(&mut raw);
            prop_assert_eq!(raw.len(), data.raw_byte_size());
            let back = TensorData::from_raw(data.dtype(), &raw, data.len(), "t").unwrap();
            prop_assert_eq!(back, data);
        }

        #[test]
        fn raw_decoding_never_panics(dtype_idx in 0usize..DataType::ALL.len(), raw in proptest::collection::vec(any::<u8>(), 0..64), count in 0usize..32) {
            let _ = TensorData::from_raw(DataType::ALL[dtype_idx], &raw, count, "t");
        }
    }
}
