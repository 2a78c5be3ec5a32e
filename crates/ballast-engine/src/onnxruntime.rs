//! ONNX through ONNX Runtime (the `ort` crate), loaded at run time from a shared library such
//! as the one in the `onnxruntime` Python wheel: nothing is linked or downloaded at build time.
//! Owns finding that library, initialising ort's process-global environment from it exactly
//! once, and [`OrtBackend`], a pool of sessions (ort's `Session::run` takes `&mut self`).
//!
//! ort panics when the library is missing or unusable and has `expect`s on paths it deems
//! infallible; every call into it here checks what it can first and runs under
//! `catch_unwind`, so callers only ever see a [`BackendError`].

use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::value::{DynValue, Outlet, TensorElementType, ValueType};
use parking_lot::Mutex;

use crate::{Backend, BackendError};

/// Engine settings for ONNX Runtime models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtOptions {
    /// The ONNX Runtime shared library. Default `None`: [`find_library`] looks at
    /// `ORT_DYLIB_PATH`, then at installed `onnxruntime` Python wheels and system paths.
    pub library: Option<PathBuf>,
    /// Threads one session may use inside one operator (ORT's intra-op pool; 0 lets ORT pick
    /// one per physical core). Default 1: measured here, for tabular models a second intra-op
    /// thread made batches of 1–64 rows slower; it only pays from ~1,000 rows per batch or for
    /// transformer-sized models. Parallelise across batches with [`Self::sessions`] instead.
    pub intra_op_threads: usize,
    /// Sessions kept for the model, so that many batches can run at once (one session runs one
    /// batch at a time). Default 1; set it to the number of engine threads that serve the
    /// model. Each session holds its own copy of the graph; pre-packed weights are shared.
    pub sessions: usize,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            library: None,
            intra_op_threads: 1,
            sessions: 1,
        }
    }
}

/// The environment variable ort itself reads; honoured here so both agree.
const ENV_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// Locates the ONNX Runtime shared library: `configured` if given (it must exist), else
/// `ORT_DYLIB_PATH` if set (it must exist), else the first match among installed `onnxruntime`
/// Python wheels (`$VIRTUAL_ENV`, `~/.local`, `~/.pyenv`, system site/dist-packages) and the
/// system library directories. The error names the missing path, or lists every place searched.
pub fn find_library(configured: Option<&Path>) -> Result<PathBuf, String> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    locate(&Search {
        configured: configured.map(Path::to_path_buf),
        ort_dylib_path: env(ENV_DYLIB_PATH),
        virtual_env: env("VIRTUAL_ENV").map(PathBuf::from),
        conda_prefix: env("CONDA_PREFIX").map(PathBuf::from),
        working_dir: std::env::current_dir().ok(),
        home: env("HOME").map(PathBuf::from),
        roots: PathBuf::from("/"),
    })
}

/// Everything [`find_library`] reads from the process, so the search itself is a pure function.
struct Search {
    configured: Option<PathBuf>,
    ort_dylib_path: Option<OsString>,
    virtual_env: Option<PathBuf>,
    conda_prefix: Option<PathBuf>,
    /// Where `.venv/` and `venv/` are looked for: a virtualenv beside the project that is not
    /// activated is the usual reason a user's onnxruntime is "not installed".
    working_dir: Option<PathBuf>,
    home: Option<PathBuf>,
    /// Where absolute system paths are resolved (`/`, or a temporary tree in tests).
    roots: PathBuf,
}

fn locate(search: &Search) -> Result<PathBuf, String> {
    if let Some(path) = &search.configured {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(format!(
                "the configured onnxruntime library {} does not exist (or is not a file)",
                path.display()
            ))
        };
    }
    if let Some(value) = &search.ort_dylib_path {
        let path = PathBuf::from(value);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{ENV_DYLIB_PATH} is set to {}, which does not exist (or is not a file)",
                path.display()
            ))
        };
    }
    let mut looked = Vec::new();
    for (base, pattern) in candidate_dirs(search) {
        let base = match base {
            Ok(base) => base,
            Err(unset) => {
                looked.push(format!("{unset}/{pattern} ({unset} unset)"));
                continue;
            }
        };
        looked.push(base.join(&pattern).join(LIB_PATTERN).display().to_string());
        for dir in expand(&base, &pattern) {
            if let Some(lib) = newest_library_in(&dir) {
                return Ok(lib);
            }
        }
    }
    Err(format!(
        "no ONNX Runtime library found: no configured path, {ENV_DYLIB_PATH} unset, and nothing in {}. \
         Install it with `pip install onnxruntime`, or point the config or {ENV_DYLIB_PATH} at libonnxruntime",
        looked.join(", ")
    ))
}

#[cfg(target_os = "macos")]
const LIB_PATTERN: &str = "libonnxruntime.*.dylib";
#[cfg(not(target_os = "macos"))]
const LIB_PATTERN: &str = "libonnxruntime.so*";

/// Whether a file name is the ONNX Runtime library (not, say, `libonnxruntime_providers_shared`).
fn is_library_name(name: &str) -> bool {
    if cfg!(target_os = "macos") {
        name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
    } else {
        name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
    }
}

/// Search directories in order: (where the pattern starts, or the unset variable it needs, and
/// the pattern below it). `*` matches within one path component.
fn candidate_dirs(search: &Search) -> Vec<(Result<PathBuf, &'static str>, String)> {
    const WHEEL: &str = "onnxruntime/capi";
    let venv = search.virtual_env.clone().ok_or("$VIRTUAL_ENV");
    let conda = search.conda_prefix.clone().ok_or("$CONDA_PREFIX");
    let cwd = || search.working_dir.clone().ok_or("the working directory");
    let home = search.home.clone().ok_or("$HOME");
    let root = || Ok(search.roots.clone());
    let mut dirs = vec![
        (venv, format!("lib/python3*/site-packages/{WHEEL}")),
        (cwd(), format!(".venv/lib/python3*/site-packages/{WHEEL}")),
        (cwd(), format!("venv/lib/python3*/site-packages/{WHEEL}")),
        (conda, format!("lib/python3*/site-packages/{WHEEL}")),
        (
            home.clone(),
            format!(".local/lib/python3*/site-packages/{WHEEL}"),
        ),
        (
            home,
            format!(".pyenv/versions/*/lib/python3*/site-packages/{WHEEL}"),
        ),
        (root(), format!("usr/lib/python3/dist-packages/{WHEEL}")),
        (
            root(),
            format!("usr/local/lib/python3*/site-packages/{WHEEL}"),
        ),
        (
            root(),
            format!("usr/local/lib/python3*/dist-packages/{WHEEL}"),
        ),
        (root(), format!("usr/lib/python3*/site-packages/{WHEEL}")),
        (
            root(),
            format!("usr/lib/{}-linux-gnu", std::env::consts::ARCH),
        ),
        (root(), "usr/local/lib".to_string()),
        (root(), "usr/lib".to_string()),
    ];
    if cfg!(target_os = "macos") {
        dirs.push((root(), "opt/homebrew/lib".to_string()));
    }
    dirs
}

/// Existing directories matching `pattern` under `base`, newest-looking first where `*` matched
/// several (so the newest Python wins).
fn expand(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![base.to_path_buf()];
    for part in pattern.split('/') {
        let mut next = Vec::new();
        for dir in &current {
            match part.split_once('*') {
                None => {
                    let p = dir.join(part);
                    if p.is_dir() {
                        next.push(p);
                    }
                }
                Some((prefix, suffix)) => {
                    let Ok(entries) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    let mut matched: Vec<(String, PathBuf)> = entries
                        .filter_map(Result::ok)
                        .filter_map(|e| {
                            let name = e.file_name().into_string().ok()?;
                            let fits = name.len() >= prefix.len() + suffix.len()
                                && name.starts_with(prefix)
                                && name.ends_with(suffix);
                            (fits && e.path().is_dir()).then(|| (name, e.path()))
                        })
                        .collect();
                    matched.sort_by_key(|(name, _)| std::cmp::Reverse(version_key(name)));
                    next.extend(matched.into_iter().map(|(_, p)| p));
                }
            }
        }
        current = next;
    }
    current
}

/// The library in `dir` with the highest version suffix (`libonnxruntime.so.1.32.0` over a bare
/// `libonnxruntime.so` symlink to something older).
fn newest_library_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (is_library_name(&name) && e.path().is_file()).then(|| (version_key(&name), e.path()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, p)| p)
}

/// The numbers in a name, in order, for comparing versions (`python3.11` > `python3.9`).
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .collect()
}

/// ort's environment and the library it came from. Set once per process.
struct Runtime {
    library: PathBuf,
    env: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises initialisation, and remembers a library ort has already `dlopen`ed even when a
/// later step failed: ort keeps the first library it loads, so a retry must use the same one.
static LOADING: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Loads ONNX Runtime from `path` and creates ort's environment, once per process. Calling it
/// again with the same library is a no-op; with a different one it is an error (ort cannot
/// switch libraries). A missing file, something that is not a shared library, or an ONNX Runtime
/// older than ort's API version 1.31 is a [`BackendError::Load`] naming the path and the reason.
pub fn init(path: &Path) -> Result<(), BackendError> {
    let load_err = |reason: String| BackendError::Load {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(load_err(
            "the ONNX Runtime library does not exist (or is not a file)".to_string(),
        ));
    }
    // ort resolves relative paths against the executable's directory; we want the usual meaning.
    let absolute = std::fs::canonicalize(path)
        .map_err(|e| load_err(format!("cannot resolve the library path: {e}")))?;
    let mut loading = LOADING.lock();
    if let Some(runtime) = RUNTIME.get() {
        return same_library(&runtime.library, &absolute).map_err(load_err);
    }
    if let Some(loaded) = loading.as_ref() {
        same_library(loaded, &absolute).map_err(load_err)?;
    }

    let builder = guarded(|| ort::init_from(&absolute).map_err(|e| describe_load_error(&e)))
        .map_err(|reason| load_err(format!("cannot load ONNX Runtime: {reason}")))?;
    *loading = Some(absolute.clone());
    let env = guarded(|| {
        builder
            .with_name("ballast")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    })
    .map_err(|reason| {
        load_err(format!(
            "cannot create the ONNX Runtime environment (ort needs ONNX Runtime API version {}): {reason}",
            ort::MINOR_VERSION
        ))
    })?;
    tracing::info!(library = %absolute.display(), "ONNX Runtime loaded");
    // We hold LOADING, so nobody else can have set RUNTIME since we checked.
    let _ = RUNTIME.set(Runtime {
        library: absolute,
        env,
    });
    Ok(())
}

fn same_library(loaded: &Path, wanted: &Path) -> Result<(), String> {
    if loaded == wanted {
        Ok(())
    } else {
        Err(format!(
            "ONNX Runtime is already loaded from {} in this process and cannot be switched",
            loaded.display()
        ))
    }
}

/// ort's message for a failed `dlopen` is just "dlopen failed"; the loader's own reason (wrong
/// ELF class, missing dependency, not an ELF file) is in the libloading error's source.
fn describe_load_error(e: &ort::LoadDynamicError) -> String {
    let mut text = e.to_string();
    if let ort::LoadDynamicError::Dlopen { error, .. } = e {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
    }
    text
}

/// Runs `f`, turning a panic inside ort into an error message.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        Err(format!("ort panicked: {what}"))
    })
}

/// Finds the library ([`find_library`]) and initialises ONNX Runtime from it ([`init`]);
/// `Ok` holds the library used. For `backend = "auto"`: an error means use another engine.
pub fn available(configured: Option<&Path>) -> Result<PathBuf, String> {
    let path = find_library(configured)?;
    init(&path).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The environment, initialising it from `library` (or the discovered one) if nobody has yet.
fn environment(library: Option<&Path>) -> Result<&'static Environment, BackendError> {
    let found = match (library, RUNTIME.get()) {
        (None, Some(runtime)) => return Ok(&runtime.env),
        (Some(path), _) => path.to_path_buf(),
        (None, None) => find_library(None).map_err(|reason| BackendError::Load {
            path: "(no library found)".to_string(),
            reason,
        })?,
    };
    init(&found)?;
    RUNTIME
        .get()
        .map(|r| &r.env)
        .ok_or_else(|| BackendError::Load {
            path: found.display().to_string(),
            reason: "ONNX Runtime initialised without an environment".to_string(),
        })
}

/// One ONNX model in ONNX Runtime: `sessions` sessions over the same file, each used by one
/// batch at a time.
pub struct OrtBackend {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    signature: ModelSignature,
    /// The graph imputes NaN (scikit-learn's `SimpleImputer`): NaN inputs mean "missing".
    nan_is_missing: bool,
    /// Pre-packed weights shared by the sessions; kept alive as long as they are.
    _weights: PrepackedWeights,
}

impl OrtBackend {
    /// Loads `path` into `opts.sessions.max(1)` sessions, initialising ONNX Runtime from
    /// `opts.library` (or the discovered library) if that has not happened yet. Errors name the
    /// file; unsupported tensor types name the tensor and its ONNX type.
    pub fn load(path: &Path, opts: &OrtOptions) -> Result<Self, BackendError> {
        let load_err = |reason: String| BackendError::Load {
            path: path.display().to_string(),
            reason,
        };
        let env = environment(opts.library.as_deref()).map_err(|e| match e {
            BackendError::Load {
                path: library,
                reason,
            } => load_err(format!("ONNX Runtime unavailable ({library}): {reason}")),
            other => other,
        })?;
        if !path.is_file() {
            return Err(load_err("no such file".to_string()));
        }
        // skl2onnx classifiers end in ZipMap by default: serve its probability tensor.
        let rewritten = crate::graph::without_zipmap(path).map_err(load_err)?;
        let (sessions, weights) = guarded(|| {
            let weights = PrepackedWeights::new();
            let configure = |e: ort::Error<_>| format!("cannot configure the session: {e}");
            let mut builder = Session::builder(env)
                .map_err(|e| e.to_string())?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(configure)?
                .with_intra_threads(opts.intra_op_threads)
                .map_err(configure)?
                .with_inter_threads(1)
                .map_err(configure)?
                .with_prepacked_weights(&weights)
                .map_err(configure)?;
            let sessions = (0..opts.sessions.max(1))
                .map(|_| {
                    match &rewritten {
                        Some(bytes) => builder.commit_from_memory(bytes),
                        None => builder.commit_from_file(path),
                    }
                    .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((sessions, weights))
        })
        .map_err(load_err)?;
        let first = sessions
            .first()
            .ok_or_else(|| load_err("no session was created".to_string()))?;
        let signature = guarded(|| signature_of(first)).map_err(load_err)?;
        Ok(Self {
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            signature,
            nan_is_missing: crate::graph::imputes_nan(path),
            _weights: weights,
        })
    }

    /// How many sessions (concurrent batches) this model has.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn run(&self, session: &mut Session, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let values = self
            .signature
            .inputs
            .iter()
            .zip(inputs)
            .map(|(spec, t)| Ok((spec.name.as_str(), to_ort(spec, t)?)))
            .collect::<Result<Vec<_>, BackendError>>()?;
        let outputs = session.run(values).map_err(|e| match e.code() {
            ort::ErrorCode::InvalidArgument => BackendError::InvalidInput(e.to_string()),
            _ => BackendError::Compute(e.to_string()),
        })?;
        crate::expect_outputs(&self.signature, outputs.len())?;
        self.signature
            .outputs
            .iter()
            .zip(outputs.values())
            .map(|(spec, value)| from_ort(spec, &value))
            .collect()
    }
}

fn dtype_of(outlet: &Outlet, what: &str) -> Result<(DataType, Vec<i64>), String> {
    let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
        return Err(format!(
            "{what} is a {}, not a tensor; ballast serves tensors only \
             (for scikit-learn classifiers, convert with zipmap=False)",
            outlet.dtype()
        ));
    };
    let dtype = match ty {
        TensorElementType::Float16 => DataType::F16,
        TensorElementType::Float32 => DataType::F32,
        TensorElementType::Float64 => DataType::F64,
        TensorElementType::Uint8 => DataType::U8,
        TensorElementType::Int32 => DataType::I32,
        TensorElementType::Int64 => DataType::I64,
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::String => DataType::Bytes,
        other => {
            return Err(format!(
                "{what} has ONNX type {}, which ballast does not serve yet \
                 (supported: float16, float, double, uint8, int32, int64, bool, string)",
                onnx_type_name(*other)
            ));
        }
    };
    // ONNX Runtime reports symbolic and unknown dimensions as -1.
    let shape = shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect();
    Ok((dtype, shape))
}

/// The ONNX spelling of an element type, as users see it in Netron or `onnx.helper`.
fn onnx_type_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Bfloat16 => "bfloat16".to_string(),
        TensorElementType::Int8 => "int8".to_string(),
        TensorElementType::Uint16 => "uint16".to_string(),
        TensorElementType::Int16 => "int16".to_string(),
        TensorElementType::Uint32 => "uint32".to_string(),
        TensorElementType::Uint64 => "uint64".to_string(),
        TensorElementType::Complex64 => "complex64".to_string(),
        TensorElementType::Complex128 => "complex128".to_string(),
        other => format!("{other:?}"),
    }
}

fn signature_of(session: &Session) -> Result<ModelSignature, String> {
    let spec = |outlet: &Outlet, kind: &str| {
        let name = outlet.name().to_string();
        let (dtype, shape) = dtype_of(outlet, &format!("{kind} '{name}'"))?;
        Ok(TensorSpec::new(name, dtype, shape))
    };
    Ok(ModelSignature {
        inputs: session
            .inputs()
            .iter()
            .map(|o| spec(o, "input"))
            .collect::<Result<_, String>>()?,
        outputs: session
            .outputs()
            .iter()
            .map(|o| spec(o, "output"))
            .collect::<Result<_, String>>()?,
    })
}

fn to_ort(spec: &TensorSpec, t: Tensor) -> Result<DynValue, BackendError> {
    let bad =
        |reason: String| BackendError::InvalidInput(format!("input '{}': {reason}", spec.name));
    if t.dtype() != spec.dtype {
        return Err(bad(format!(
            "expected {} data, got {}",
            spec.dtype,
            t.dtype()
        )));
    }
    let shape = t.shape;
    let value = match t.data {
        TensorData::Bool(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::U8(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::F16(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::I32(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::I64(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::F32(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::F64(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::Bytes(v) => {
            // ort wants `'static` element types; `String::from_utf8` reuses each buffer.
            let strings = v
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b).map_err(|_| {
                        bad(format!(
                            "BYTES element {i} is not UTF-8, which this ONNX string input requires"
                        ))
                    })
                })
                .collect::<Result<Vec<String>, _>>()?;
            ort::value::Tensor::from_string_array((shape, strings.as_slice())).map(|t| t.into_dyn())
        }
    };
    value.map_err(|e| bad(e.to_string()))
}

fn from_ort(spec: &TensorSpec, value: &DynValue) -> Result<Tensor, BackendError> {
    let err = |e: ort::Error| BackendError::Compute(format!("output '{}': {e}", spec.name));
    fn primitive<T: ort::value::PrimitiveTensorElementType + Clone>(
        value: &DynValue,
    ) -> ort::Result<(Vec<i64>, Vec<T>)> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((shape.to_vec(), data.to_vec()))
    }
    let (shape, data) = match spec.dtype {
        DataType::Bool => primitive(value).map(|(s, d)| (s, TensorData::Bool(d))),
        DataType::U8 => primitive(value).map(|(s, d)| (s, TensorData::U8(d))),
        DataType::F16 => primitive(value).map(|(s, d)| (s, TensorData::F16(d))),
        DataType::I32 => primitive(value).map(|(s, d)| (s, TensorData::I32(d))),
        DataType::I64 => primitive(value).map(|(s, d)| (s, TensorData::I64(d))),
        DataType::F32 => primitive(value).map(|(s, d)| (s, TensorData::F32(d))),
        DataType::F64 => primitive(value).map(|(s, d)| (s, TensorData::F64(d))),
        DataType::Bytes => value.try_extract_strings().map(|(s, d)| {
            (
                s.to_vec(),
                TensorData::Bytes(d.into_iter().map(String::into_bytes).collect()),
            )
        }),
    }
    .map_err(err)?;
    let shape = shape
        .into_iter()
        .map(usize::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            BackendError::Compute(format!("output '{}': negative dimension", spec.name))
        })?;
    Tensor::new(spec.name.clone(), shape, data).map_err(|e| BackendError::Compute(e.message))
}

impl Backend for OrtBackend {
    fn engine(&self) -> &'static str {
        "onnxruntime"
    }

    fn nan_is_missing(&self) -> bool {
        self.nan_is_missing
    }

    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        if inputs.len() != self.signature.inputs.len() {
            return Err(BackendError::InvalidInput(format!(
                "got {} inputs, the model takes {} ({})",
                inputs.len(),
                self.signature.inputs.len(),
                self.signature.input_names()
            )));
        }
        // A free session if there is one, starting from a rotating index so that load spreads;
        // otherwise wait for "our" session. Locks are per session, never across the pool.
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut session = (0..n)
            .find_map(|i| self.sessions[(start + i) % n].try_lock())
            .unwrap_or_else(|| self.sessions[start].lock());
        let result = panic::catch_unwind(AssertUnwindSafe(|| self.run(&mut session, inputs)));
        result.unwrap_or_else(|_| {
            Err(BackendError::Compute(
                "onnxruntime panicked while running the batch".to_string(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"not really a library").unwrap();
    }

    fn search(root: &Path) -> Search {
        Search {
            configured: None,
            ort_dylib_path: None,
            virtual_env: None,
            conda_prefix: None,
            working_dir: Some(root.join("project")),
            home: Some(root.join("home")),
            roots: root.join("sys"),
        }
    }

    #[test]
    fn configured_path_wins_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("custom.so");
        let mut s = search(dir.path());
        s.configured = Some(lib.clone());
        s.ort_dylib_path = Some(lib.clone().into());
        let err = locate(&s).unwrap_err();
        assert!(err.contains(&lib.display().to_string()), "{err}");
        assert!(err.contains("configured"), "{err}");
        touch(&lib);
        assert_eq!(locate(&s).unwrap(), lib);
    }

    #[test]
    fn ort_dylib_path_is_used_when_nothing_is_configured_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("from-env.so");
        let mut s = search(dir.path());
        s.ort_dylib_path = Some(lib.clone().into());
        touch(&dir.path().join("sys/usr/lib/libonnxruntime.so"));
        let err = locate(&s).unwrap_err();
        assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(err.contains(&lib.display().to_string()), "{err}");
        touch(&lib);
        assert_eq!(locate(&s).unwrap(), lib);
    }

    #[test]
    fn finds_the_newest_wheel_library_before_system_ones() {
        let dir = tempfile::tempdir().unwrap();
        let capi = |py: &str, minor: &str| {
            dir.path().join(format!(
                "home/.pyenv/versions/{py}/lib/python3.{minor}/site-packages/onnxruntime/capi"
            ))
        };
        touch(&capi("3.9.18", "9").join("libonnxruntime.so.1.17.0"));
        touch(&capi("3.11.7", "11").join("libonnxruntime.so.1.32.0"));
        touch(&capi("3.11.7", "11").join("libonnxruntime.so.1.9.0"));
        touch(&capi("3.11.7", "11").join("libonnxruntime_providers_shared.so"));
        touch(&dir.path().join("sys/usr/lib/libonnxruntime.so"));
        let found = locate(&search(dir.path())).unwrap();
        if cfg!(target_os = "macos") {
            assert_eq!(found, dir.path().join("sys/usr/lib/libonnxruntime.so"));
        } else {
            assert_eq!(found, capi("3.11.7", "11").join("libonnxruntime.so.1.32.0"));
        }
    }

    #[test]
    fn virtual_env_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        let lib =
            venv.join("lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.0");
        touch(&lib);
        touch(&dir.path().join(
            "home/.local/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0",
        ));
        let mut s = search(dir.path());
        s.virtual_env = Some(venv);
        if !cfg!(target_os = "macos") {
            assert_eq!(locate(&s).unwrap(), lib);
        }
    }

    /// A `.venv` beside the working directory that nobody activated is found.
    #[test]
    fn an_inactive_dot_venv_in_the_working_directory_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join(
            "project/.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0",
        );
        touch(&lib);
        if !cfg!(target_os = "macos") {
            assert_eq!(locate(&search(dir.path())).unwrap(), lib);
        }
    }

    #[test]
    fn not_found_lists_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(&search(dir.path())).unwrap_err();
        for part in [
            "ORT_DYLIB_PATH",
            ".pyenv/versions/*/lib/python3*/site-packages/onnxruntime/capi",
            "usr/local/lib/python3*/dist-packages",
            "usr/local/lib/",
            "project/.venv/lib/python3*/site-packages/onnxruntime/capi",
            "$VIRTUAL_ENV/lib/python3*/site-packages/onnxruntime/capi ($VIRTUAL_ENV unset)",
            "pip install onnxruntime",
        ] {
            assert!(err.contains(part), "missing {part:?} in: {err}");
        }
    }

    #[test]
    fn version_key_orders_numerically() {
        assert!(version_key("python3.11") > version_key("python3.9"));
        assert!(version_key("libonnxruntime.so.1.32.0") > version_key("libonnxruntime.so"));
    }
}
