//! One prediction as it is logged, and its binary form in the write-ahead log.
//!
//! A [`Record`] is built by the serving path once a request has an outcome (served, failed or
//! refused) and is redacted before it is encoded. The encoding is private to the WAL: a
//! length-prefixed little-endian layout with tensors in the Open Inference Protocol's raw
//! form, chosen because it costs one pass and no allocation per value; Parquet segments are
//! the format anyone else reads.

use ballast_core::{DataType, Tensor, TensorData};

use crate::error::CaptureError;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Answered with outputs.
    Ok,
    /// Failed after it was admitted (bad input, engine error, deadline).
    Error,
    /// Refused before any work (overload, draining, the log itself full).
    Refused,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Refused => "refused",
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Refused,
            _ => return None,
        })
    }

    fn to_byte(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Refused => 2,
        }
    }
}

/// One logged prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The OIP `id`, else `x-request-id`, else the generated one (as echoed to the client).
    pub id: String,
    /// The server made the id (it is not client data): redaction need not scan it. Not
    /// stored; a record read back says `false`.
    pub id_generated: bool,
    /// W3C trace id (32 hex digits), when the request carried a `traceparent`.
    pub trace_id: Option<String>,
    /// Arrival, microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    /// Empty until tenants land.
    pub tenant: String,
    pub model: String,
    pub version: String,
    /// The alias or version the client asked for (`production`, `3`), when it named one.
    pub requested: Option<String>,
    /// Under a traffic policy: `baseline`, `candidate` or `shadow`.
    pub arm: Option<String>,
    /// `http`, `grpc` or `internal`.
    pub protocol: String,
    /// `critical`, `default`, `sheddable` or `shadow`.
    pub priority: String,
    pub status: Status,
    /// The error code (`invalid_argument`, `resource_exhausted`, ...) unless served.
    pub code: Option<String>,
    /// Time queued before the engine call, when the engine ran.
    pub queue_us: Option<i64>,
    /// Time in the engine call (for the whole batch the request was part of).
    pub engine_us: Option<i64>,
    /// Rows in that engine call.
    pub batch_rows: Option<i64>,
    /// Arrival to outcome.
    pub total_us: i64,
    /// Hash of the input names, datatypes and shapes past the batch dimension (16 hex digits):
    /// records with the same hash can be replayed against the same signature.
    pub input_schema: String,
    /// Request parameters other than `id`, `timeout` and `priority`, as a JSON object
    /// (after redaction); `None` when there were none.
    pub parameters: Option<String>,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
}

impl Record {
    /// Bytes this record takes in memory, roughly (for the log's memory bound).
    pub fn approx_bytes(&self) -> usize {
        let tensors: usize = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .map(|t| t.name.len() + t.shape.len() * 8 + t.data.raw_byte_size() + 64)
            .sum();
        256 + self.id.len() + self.model.len() + self.version.len() + tensors
    }
}

/// The input schema hash of [`Record::input_schema`]: FNV-1a over each input's name, datatype
/// and shape without its first (batch) dimension, in request order.
pub fn input_schema_hash(inputs: &[Tensor]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for t in inputs {
        eat(t.name.as_bytes());
        eat(&[0]);
        eat(t.dtype().as_str().as_bytes());
        for d in t.shape.iter().skip(1) {
            eat(&(*d as u64).to_le_bytes());
        }
        eat(&[0xff]);
    }
    format!("{h:016x}")
}

const FORMAT: u8 = 1;

/// Appends the record's binary form to `out`.
pub fn encode(r: &Record, out: &mut Vec<u8>) {
    out.push(FORMAT);
    put_str(out, &r.id);
    put_opt(out, r.trace_id.as_deref());
    out.extend_from_slice(&r.time_us.to_le_bytes());
    put_str(out, &r.tenant);
    put_str(out, &r.model);
    put_str(out, &r.version);
    put_opt(out, r.requested.as_deref());
    put_opt(out, r.arm.as_deref());
    put_str(out, &r.protocol);
    put_str(out, &r.priority);
    out.push(r.status.to_byte());
    put_opt(out, r.code.as_deref());
    for v in [r.queue_us, r.engine_us, r.batch_rows] {
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&r.total_us.to_le_bytes());
    put_str(out, &r.input_schema);
    put_opt(out, r.parameters.as_deref());
    put_tensors(out, &r.inputs);
    put_tensors(out, &r.outputs);
}

/// Reads a record written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Record, CaptureError> {
    let mut c = Cursor { b: bytes, at: 0 };
    let format = c.u8()?;
    if format != FORMAT {
        return Err(CaptureError::Corrupt(format!(
            "record format {format}, expected {FORMAT}"
        )));
    }
    let id = c.string()?;
    let trace_id = c.opt()?;
    let time_us = c.i64()?;
    let tenant = c.string()?;
    let model = c.string()?;
    let version = c.string()?;
    let requested = c.opt()?;
    let arm = c.opt()?;
    let protocol = c.string()?;
    let priority = c.string()?;
    let status = Status::from_byte(c.u8()?)
        .ok_or_else(|| CaptureError::Corrupt("unknown status byte".into()))?;
    let code = c.opt()?;
    let mut timing = [None; 3];
    for slot in &mut timing {
        *slot = match c.u8()? {
            0 => None,
            _ => Some(c.i64()?),
        };
    }
    let total_us = c.i64()?;
    let input_schema = c.string()?;
    let parameters = c.opt()?;
    let inputs = c.tensors()?;
    let outputs = c.tensors()?;
    if c.at != bytes.len() {
        return Err(CaptureError::Corrupt(format!(
            "{} trailing bytes after a record",
            bytes.len() - c.at
        )));
    }
    Ok(Record {
        id_generated: false,
        id,
        trace_id,
        time_us,
        tenant,
        model,
        version,
        requested,
        arm,
        protocol,
        priority,
        status,
        code,
        queue_us: timing[0],
        engine_us: timing[1],
        batch_rows: timing[2],
        total_us,
        input_schema,
        parameters,
        inputs,
        outputs,
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn put_tensors(out: &mut Vec<u8>, tensors: &[Tensor]) {
    out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    for t in tensors {
        put_str(out, &t.name);
        let dtype = DataType::ALL
            .iter()
            .position(|d| *d == t.dtype())
            .unwrap_or_default() as u8;
        out.push(dtype);
        out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in &t.shape {
            out.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        out.extend_from_slice(&(t.data.raw_byte_size() as u64).to_le_bytes());
        t.data.write_raw(out);
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CaptureError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| CaptureError::Corrupt("record ends early".into()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CaptureError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CaptureError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, CaptureError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn i64(&mut self) -> Result<i64, CaptureError> {
        Ok(self.u64()? as i64)
    }

    fn string(&mut self) -> Result<String, CaptureError> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| CaptureError::Corrupt("string is not UTF-8".into()))
    }

    fn opt(&mut self) -> Result<Option<String>, CaptureError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.string().map(Some),
        }
    }

    fn tensors(&mut self) -> Result<Vec<Tensor>, CaptureError> {
        let n = self.u32()? as usize;
        let mut out = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let name = self.string()?;
            let dtype = *DataType::ALL
                .get(self.u8()? as usize)
                .ok_or_else(|| CaptureError::Corrupt("unknown datatype".into()))?;
            let dims = self.u32()? as usize;
            let mut shape = Vec::with_capacity(dims.min(16));
            for _ in 0..dims {
                shape.push(self.u64()? as usize);
            }
            let len = self.u64()? as usize;
            let raw = self.take(len)?;
            let count = ballast_core::tensor::element_count(&shape)
                .ok_or_else(|| CaptureError::Corrupt("shape overflows".into()))?;
            let data = TensorData::from_raw(dtype, raw, count, &name)
                .map_err(|e| CaptureError::Corrupt(e.message))?;
            let t = Tensor::new(name, shape, data).map_err(|e| CaptureError::Corrupt(e.message))?;
            out.push(t);
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn sample(id: &str) -> Record {
        Record {
            id_generated: false,
            id: id.into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            time_us: 1_765_000_000_123_456,
            tenant: String::new(),
            model: "fraud".into(),
            version: "2".into(),
            requested: Some("production".into()),
            arm: None,
            protocol: "http".into(),
            priority: "default".into(),
            status: Status::Ok,
            code: None,
            queue_us: Some(12),
            engine_us: Some(40),
            batch_rows: Some(3),
            total_us: 75,
            input_schema: "0123456789abcdef".into(),
            parameters: Some(r#"{"customer":"x"}"#.into()),
            inputs: vec![
                Tensor::new(
                    "features",
                    vec![1, 3],
                    TensorData::F32(vec![1.0, -2.5, 3.25]),
                )
                .unwrap(),
                Tensor::new(
                    "note",
                    vec![1],
                    TensorData::Bytes(vec![b"call <PHONE>".to_vec()]),
                )
                .unwrap(),
            ],
            outputs: vec![
                Tensor::new("probability", vec![1], TensorData::F32(vec![0.25])).unwrap(),
            ],
        }
    }

    #[test]
    fn a_record_survives_its_binary_form() {
        let r = sample("a");
        let mut buf = Vec::new();
        encode(&r, &mut buf);
        assert_eq!(decode(&buf).unwrap(), r);
    }

    #[test]
    fn a_cut_record_is_corrupt_not_a_panic() {
        let mut buf = Vec::new();
        encode(&sample("a"), &mut buf);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_schema_hash_ignores_the_batch_dimension_and_values() {
        let a = Tensor::new("x", vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap();
        let b = Tensor::new("x", vec![3, 2], TensorData::F32(vec![0.0; 6])).unwrap();
        let c = Tensor::new("x", vec![1, 2], TensorData::F64(vec![1.0, 2.0])).unwrap();
        assert_eq!(
            input_schema_hash(std::slice::from_ref(&a)),
            input_schema_hash(&[b])
        );
        assert_ne!(input_schema_hash(&[a]), input_schema_hash(&[c]));
    }
}
