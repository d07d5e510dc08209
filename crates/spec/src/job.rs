//! A job: which module to run, with what arguments, input, files and limits.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::limits::LimitsRequest;
use crate::reject::{Rejection, codes};

/// Longest accepted job id, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted batch name, in bytes.
pub const MAX_BATCH_LEN: usize = 128;

/// One job, as submitted.
///
/// Unknown fields are refused: a misspelt field (`limit` for `limits`) would otherwise be
/// ignored silently and the job would run under limits its author did not mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Unique id; generated (a UUID) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub id: Option<String>,
    /// Batch this job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub batch: Option<String>,
    /// The module to run.
    pub module: ModuleRef,
    /// How the module is run; when absent, the module's bytes and exports decide
    /// ([`JobKind::detect`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// The function to call, for kind `function` (default `transform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// For a core module run as a command: the export to call instead of `_start`, as
    /// `wasmtime run --invoke NAME` does (a WASI reactor's entry point, e.g. `run`). It
    /// takes no parameters and returns nothing (exit status 0) or an `i32` (the exit
    /// status); `_initialize` is called first when the module exports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub invoke: Option<String>,
    /// What an import the sandbox does not provide does: `reject` the job before anything
    /// runs (`unknown_import`), or `trap` when it is called (`trap_unknown_import`), as
    /// `wasmtime run --trap-unknown-imports` does. The worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_imports: Option<UnknownImports>,
    /// Input bytes as UTF-8 text, for kinds `function` and `handler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Input bytes as base64, for kinds `function` and `handler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<String>,
    /// Arguments after argv\[0\] (which the runner supplies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The guest's environment; the host's is never visible.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub env: BTreeMap<String, String>,
    /// Standard input as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Standard input as base64 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
    /// The guest path at which the job's directory is preopened (absolute; `/` allowed);
    /// the worker's default (`/work` unless the operator set another) when absent.
    /// Relative paths of the guest resolve inside the job's directory whatever it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// Files written into the job's directory before it starts.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub files: BTreeMap<String, FileContent>,
    /// Paths (globs allowed) in the job's directory returned in the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<String>,
    /// Guest path -> name of an operator-declared volume.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub volumes: BTreeMap<String, String>,
    /// Resource limits asked for.
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "object_only"
    )]
    pub limits: LimitsRequest,
    /// The job must start by then (RFC 3339 in UTC, `2026-12-01T16:00:00Z`), or it ends
    /// `expired` without running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?[Zz]$"))]
    pub expires_at: Option<String>,
}

/// What an import the sandbox does not provide does (the job's `unknown_imports`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UnknownImports {
    /// The job is rejected (`unknown_import`) before anything runs.
    #[default]
    Reject,
    /// The import is linked as a function that traps when called
    /// (`trap_unknown_import`); imports that are not functions are still rejected.
    Trap,
}

impl UnknownImports {
    /// The name used on the wire and in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownImports::Reject => "reject",
            UnknownImports::Trap => "trap",
        }
    }
}

impl std::str::FromStr for UnknownImports {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(UnknownImports::Reject),
            "trap" => Ok(UnknownImports::Trap),
            other => Err(format!(
                "unknown_imports {other:?} is not one of reject, trap"
            )),
        }
    }
}

/// The longest `invoke` export name accepted.
pub const MAX_INVOKE_LEN: usize = 256;

fn is_default(l: &LimitsRequest) -> bool {
    *l == LimitsRequest::default()
}

/// How a job's module is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A WASI preview 1 command: a core module whose `_start` is called.
    Command,
    /// A WASI preview 2 command component: its `wasi:cli/run` export is called.
    Component,
    /// A function export of a core module, called with the job's input bytes under the
    /// plugin ABI (docs/guest-abi.md); its output bytes are the result's `output`.
    Function,
    /// A component of the `wasmq:job/handler` world (wit/job.wit): `handle` is called with
    /// the input bytes and the job's context.
    Handler,
}

/// A kind is one of four strings. The derived impl also took `{"function": null}`, and said
/// only "expected value" of a number or an array.
impl<'de> Deserialize<'de> for JobKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: [JobKind; 4] = [
            JobKind::Command,
            JobKind::Component,
            JobKind::Function,
            JobKind::Handler,
        ];
        const NAMES: &[&str] = &["command", "component", "function", "handler"];

        struct Kind;

        impl Visitor<'_> for Kind {
            type Value = JobKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of command, component, function, handler")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<JobKind, E> {
                KINDS
                    .into_iter()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| E::unknown_variant(s, NAMES))
            }
        }

        d.deserialize_str(Kind)
    }
}

/// What a module offers, as far as choosing its kind goes: read from its bytes (core
/// module or component) and its exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    /// A component (Component Model) rather than a core module.
    pub component: bool,
    /// A core module exporting `_start`, or a component exporting `wasi:cli/run`.
    pub command: bool,
    /// A core module exporting `alloc` and the job's function (`export`, or `transform`),
    /// or a component exporting `handle` of the `wasmq:job/handler` world.
    pub function: bool,
}

impl JobKind {
    /// The kind a job without `kind` runs as, given what its module exports; `None` when
    /// it offers no entry point. A job that gives `input` or `export` (`wants_function`,
    /// fields no command takes) runs as a function (core module) or handler (component);
    /// otherwise a module's command comes before its function.
    pub fn detect(exports: Exports, wants_function: bool) -> Option<JobKind> {
        let function = wants_function || (exports.function && !exports.command);
        match (exports.component, function, exports.command) {
            (false, true, _) => Some(JobKind::Function),
            (false, false, true) => Some(JobKind::Command),
            (true, true, _) => Some(JobKind::Handler),
            (true, false, true) => Some(JobKind::Component),
            (_, false, false) => None,
        }
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Command => "command",
            JobKind::Component => "component",
            JobKind::Function => "function",
            JobKind::Handler => "handler",
        }
    }

    /// True for the kinds whose module is a component.
    pub fn is_component(self) -> bool {
        matches!(self, JobKind::Component | JobKind::Handler)
    }

    /// True for the kinds that take `input` and return `output`.
    pub fn takes_input(self) -> bool {
        matches!(self, JobKind::Function | JobKind::Handler)
    }
}

/// Where a job's module comes from: an object with exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModuleRef {
    /// The sha256 (64 lowercase hex digits) of a module in the module store.
    Sha256(String),
    /// The module's bytes, base64-encoded.
    Base64(String),
    /// An OCI reference, `HOST[:PORT]/REPOSITORY:TAG` or `HOST[:PORT]/REPOSITORY@sha256:<hex>`,
    /// to a WebAssembly artifact (one `application/wasm` layer, or any single layer whose
    /// bytes are WebAssembly). `wasmq submit` pins a tag to its manifest digest.
    Oci(String),
    /// A local file; accepted only by the local tools, which turn it into a `sha256`
    /// (so the job message's schema leaves it out).
    #[schemars(skip)]
    Path(PathBuf),
}

/// Says that `module` takes exactly one key, where serde_json would only say "expected
/// value" for a second key or a value that is not an object.
impl<'de> Deserialize<'de> for ModuleRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &["sha256", "base64", "oci", "path"];
        const EXPECTED: &str = "an object with one key: sha256, base64, oci or path";

        struct Module;

        impl<'de> Visitor<'de> for Module {
            type Value = ModuleRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModuleRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &EXPECTED));
                };
                let module = match key.as_str() {
                    "sha256" => ModuleRef::Sha256(map.next_value()?),
                    "base64" => ModuleRef::Base64(map.next_value()?),
                    "oci" => ModuleRef::Oci(map.next_value()?),
                    "path" => ModuleRef::Path(map.next_value()?),
                    other => return Err(de::Error::unknown_field(other, KEYS)),
                };
                if let Some(second) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format_args!(
                        "a second key {}; expected {EXPECTED}",
                        Shown(&second)
                    )));
                }
                Ok(module)
            }
        }

        d.deserialize_map(Module)
    }
}

/// The content of an input or collected file: a string, or `{"base64": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FileContent {
    /// UTF-8 text.
    Text(String),
    /// Arbitrary bytes.
    Binary {
        /// The bytes, base64-encoded.
        base64: String,
    },
}

impl FileContent {
    /// Text when `bytes` are UTF-8, base64 otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => FileContent::Text(s),
            Err(e) => FileContent::Binary {
                base64: BASE64.encode(e.as_bytes()),
            },
        }
    }

    /// The raw bytes, or why the base64 does not decode.
    pub fn to_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        match self {
            FileContent::Text(s) => Ok(s.as_bytes().to_vec()),
            FileContent::Binary { base64 } => BASE64.decode(base64),
        }
    }
}

/// Says which of the two forms was expected, where an untagged enum would only say that
/// nothing matched; an object takes exactly the key `base64`.
impl<'de> Deserialize<'de> for FileContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Binary {
            base64: String,
        }

        struct Content;

        impl<'de> Visitor<'de> for Content {
            type Value = FileContent;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, or an object {"base64": "..."}"#)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<FileContent, E> {
                Ok(FileContent::Text(s.to_owned()))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<FileContent, E> {
                Ok(FileContent::Text(s))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileContent, A::Error> {
                let Binary { base64 } =
                    Binary::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FileContent::Binary { base64 })
            }
        }

        d.deserialize_any(Content)
    }
}

/// Decodes one job from JSON and checks it; the id is filled in when absent.
///
/// On failure the rejection says what is wrong; the id and batch, when the text had them,
/// are returned too so the result can still be matched to what was sent. They are returned
/// only when they are themselves valid: the batch names a result routing key and queue, and
/// an id or batch that broke the rules is no safer to echo than it was to accept.
pub fn decode_job(bytes: &[u8]) -> Result<Job, (Rejection, Option<String>, Option<String>)> {
    match parse(bytes) {
        Ok(mut job) => {
            if job.id.is_none() {
                job.id = Some(uuid::Uuid::new_v4().to_string());
            }
            match job.validate() {
                Ok(()) => Ok(job),
                Err(r) => Err((
                    Rejection::new(r.code, capped(r.message)),
                    job.id.filter(|s| valid_id(s)),
                    job.batch.filter(|s| valid_batch(s)),
                )),
            }
        }
        Err(message) => {
            let (id, batch) = salvage_id(bytes);
            Err((
                Rejection::new(codes::INVALID_JOB, capped(message)),
                id,
                batch,
            ))
        }
    }
}

/// Parses a job, or says why not, naming the field at fault when there is one:
/// `invalid job: limits.timeout_ms: invalid type: ...`.
fn parse(bytes: &[u8]) -> Result<Job, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let parsed = object_only::<_, Job>(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    match parsed {
        Ok(job) => match de.end() {
            Ok(()) => Ok(job),
            Err(e) => Err(format!("invalid job: {e}")),
        },
        Err(e) => match field_path(&track.path()) {
            Some(field) => Err(format!("invalid job: {field}: {e}")),
            None => Err(format!("invalid job: {e}")),
        },
    }
}

/// A struct from a JSON object only. Derived struct impls also take an array of the
/// fields in order, which would make `[null, null, {"base64": ""}]` a job: the format has
/// no such form, and a field would depend on its position instead of its name.
fn object_only<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Object<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }

    d.deserialize_map(Object(std::marker::PhantomData))
}

/// A map whose keys are all different. A JSON object may repeat a key and serde keeps the
/// last value silently; in `env`, `files` or `volumes` that would make a job mean one thing
/// to a reader who stops at the first and another to the worker.
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key {}",
                        Shown(&key)
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    d.deserialize_map(Unique(std::marker::PhantomData))
}

/// A field path as the documentation writes it (`limits.fuel`, `args[2]`,
/// `files["out/a.txt"].base64`), or `None` at the top level.
fn field_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                let is_field = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                // Inside env, files and volumes a key is a name or path, not a field.
                let in_map = matches!(out.as_str(), "env" | "files" | "volumes");
                if is_field && !in_map {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                } else {
                    out.push_str(&format!("[{}]", Shown(key)));
                }
            }
            Segment::Unknown => out.push_str("[?]"),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Longest rejection message [`decode_job`] returns, in bytes. A message quotes at most
/// 64 characters of a value it names, but serde's own (`invalid type: string "..."`)
/// quote the whole value.
pub const MAX_REJECTION_LEN: usize = 1024;

/// `message`, cut to [`MAX_REJECTION_LEN`] with ` ...` at the end when it is longer.
fn capped(mut message: String) -> String {
    const MORE: &str = " ...";
    if message.len() > MAX_REJECTION_LEN {
        let mut cut = MAX_REJECTION_LEN - MORE.len();
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(MORE);
    }
    message
}

/// A value quoted in a message: escaped, and cut to 64 characters followed by `...`.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(64) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
        }
    }
}

/// The `id` and `batch` strings of a JSON object that is not a valid job, if present.
fn salvage_id(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(bytes) else {
        return (None, None);
    };
    let field = |k: &str, valid: fn(&str) -> bool| {
        map.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| valid(s))
            .map(str::to_owned)
    };
    (field("id", valid_id), field("batch", valid_batch))
}

/// 1 to [`MAX_ID_LEN`] bytes with no control characters.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

/// 1 to [`MAX_BATCH_LEN`] characters of `A-Z a-z 0-9 - _ :`.
fn valid_batch(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_BATCH_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

/// An RFC 3339 date and time in UTC (`Z`) as a point in time.
fn parse_utc(text: &str) -> Result<SystemTime, &'static str> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| "is not an RFC 3339 date and time (2026-12-01T16:00:00Z)")?;
    if !t.offset().is_utc() || !text.ends_with(['Z', 'z']) {
        return Err("must be in UTC, ending in Z");
    }
    Ok(SystemTime::from(t))
}

fn invalid(message: String) -> Rejection {
    Rejection::new(codes::INVALID_FIELD, message)
}

impl Job {
    /// The job's id; every decoded job has one.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// Structural checks that need no worker state: names, paths, exclusive fields.
    pub fn validate(&self) -> Result<(), Rejection> {
        if let Some(id) = &self.id
            && !valid_id(id)
        {
            return Err(invalid(format!(
                "id must be 1 to {MAX_ID_LEN} bytes with no control characters"
            )));
        }
        if let Some(batch) = &self.batch
            && !valid_batch(batch)
        {
            return Err(invalid(format!(
                "batch {} must be 1 to {MAX_BATCH_LEN} characters of A-Z, a-z, 0-9, '-', '_' or ':'",
                Shown(batch)
            )));
        }
        if let ModuleRef::Sha256(hex) = &self.module
            && !is_sha256_hex(hex)
        {
            return Err(invalid(format!(
                "module.sha256 {} is not 64 lowercase hex digits",
                Shown(hex)
            )));
        }
        if let ModuleRef::Oci(reference) = &self.module
            && let Err(why) = check_oci_reference(reference)
        {
            return Err(invalid(format!("module.oci {} {why}", Shown(reference))));
        }
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return Err(invalid(format!("args[{i}] contains a NUL byte")));
            }
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(invalid(format!(
                    "env key {} must be non-empty, without '=' or NUL, and its value without NUL",
                    Shown(k)
                )));
            }
        }
        if self.stdin.is_some() && self.stdin_base64.is_some() {
            return Err(invalid("give stdin or stdin_base64, not both".into()));
        }
        if self.input.is_some() && self.input_base64.is_some() {
            return Err(invalid("give input or input_base64, not both".into()));
        }
        if let Some(kind) = self.kind {
            self.check_input_for(kind)?;
        }
        if self.export.as_deref() == Some("") {
            return Err(invalid(
                "export is empty; name the function to call, or leave export out to call transform"
                    .into(),
            ));
        }
        if let Some(kind) = self.kind {
            self.check_export_for(kind)?;
        }
        if let Some(name) = &self.invoke {
            if name.is_empty() || name.len() > MAX_INVOKE_LEN {
                return Err(invalid(format!(
                    "invoke must name an export of 1 to {MAX_INVOKE_LEN} bytes; leave it out to call `_start`"
                )));
            }
            if self.export.is_some() {
                return Err(invalid(
                    "give invoke (the export a command calls) or export (a kind function job's function), not both".into(),
                ));
            }
            if let Some(kind) = self.kind {
                self.check_invoke_for(kind)?;
            }
        }
        if let Some(dir) = &self.work_dir {
            check_work_dir(dir).map_err(|why| invalid(format!("work_dir {} {why}", Shown(dir))))?;
        }
        for path in self.files.keys() {
            check_relative(path)
                .map_err(|why| invalid(format!("files key {} {why}", Shown(path))))?;
        }
        for pattern in &self.collect {
            check_relative(pattern)
                .map_err(|why| invalid(format!("collect entry {} {why}", Shown(pattern))))?;
        }
        self.check_mounts(self.work_dir.as_deref().unwrap_or(crate::WORK_DIR))?;
        if let Some(at) = &self.expires_at {
            parse_utc(at).map_err(|why| invalid(format!("expires_at {} {why}", Shown(at))))?;
        }
        self.check_base64()
    }

    /// When the job expires (`expires_at`), if it says; `None` too when the field does not
    /// parse, which [`Job::validate`] refuses.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at.as_deref().and_then(|at| parse_utc(at).ok())
    }

    /// True when the job gives a field only a function or handler takes (`input`,
    /// `input_base64`, `export`): what decides between a module's command and its
    /// function when the job gives no `kind`.
    pub fn wants_function(&self) -> bool {
        self.input.is_some() || self.input_base64.is_some() || self.export.is_some()
    }

    /// Checks that the job's fields fit `kind` (given, or detected from the module):
    /// `input` only for kinds that take it, `export` only for `function`.
    pub fn check_fields_for(&self, kind: JobKind) -> Result<(), Rejection> {
        self.check_input_for(kind)?;
        self.check_export_for(kind)?;
        self.check_invoke_for(kind)
    }

    fn check_invoke_for(&self, kind: JobKind) -> Result<(), Rejection> {
        if let Some(name) = &self.invoke
            && kind != JobKind::Command
        {
            return Err(invalid(format!(
                "invoke {} names the export a core module's command calls; this job is of kind {}",
                Shown(name),
                kind.as_str()
            )));
        }
        Ok(())
    }

    fn check_input_for(&self, kind: JobKind) -> Result<(), Rejection> {
        if !kind.takes_input() && (self.input.is_some() || self.input_base64.is_some()) {
            return Err(invalid(format!(
                "input is for kinds function and handler; a {} job reads stdin instead",
                kind.as_str()
            )));
        }
        Ok(())
    }

    fn check_export_for(&self, kind: JobKind) -> Result<(), Rejection> {
        if let Some(e) = &self.export
            && kind != JobKind::Function
        {
            return Err(invalid(format!(
                "export {} names the function of a kind function job; this job is of kind {}",
                Shown(e),
                kind.as_str()
            )));
        }
        Ok(())
    }

    /// Checks the volume mount points against the job's directory at guest path
    /// `work_dir` (the job's own, or the worker's default when the job gives none).
    pub fn check_mounts(&self, work_dir: &str) -> Result<(), Rejection> {
        for (guest, name) in &self.volumes {
            check_volume_mount(guest, work_dir)
                .map_err(|why| invalid(format!("volume mount point {} {why}", Shown(guest))))?;
            if name.is_empty() {
                return Err(invalid(format!(
                    "volume at {} names no volume",
                    Shown(guest)
                )));
            }
        }
        Ok(())
    }

    /// Every base64 text decodes (checked without keeping the bytes).
    fn check_base64(&self) -> Result<(), Rejection> {
        let refuse = |field: &str, e: base64::DecodeError| {
            Rejection::new(
                codes::INVALID_BASE64,
                format!("{field} does not decode: {e}"),
            )
        };
        if let ModuleRef::Base64(text) = &self.module {
            check_base64(text).map_err(|e| refuse("module.base64", e))?;
        }
        if let Some(text) = &self.stdin_base64 {
            check_base64(text).map_err(|e| refuse("stdin_base64", e))?;
        }
        if let Some(text) = &self.input_base64 {
            check_base64(text).map_err(|e| refuse("input_base64", e))?;
        }
        for (path, content) in &self.files {
            if let FileContent::Binary { base64 } = content {
                check_base64(base64)
                    .map_err(|e| refuse(&format!("files[{}].base64", Shown(path)), e))?;
            }
        }
        Ok(())
    }
}

/// Whether `text` decodes as standard base64, with the error `decode` would give, without
/// holding all the bytes: a 16 MiB inline module is checked through a 3 KiB buffer.
fn check_base64(text: &str) -> Result<(), base64::DecodeError> {
    // A multiple of 4, so every chunk but the last is whole quads; padding may only end
    // the last one.
    const CHUNK: usize = 4096;
    let mut buf = [0u8; CHUNK / 4 * 3];
    let bytes = text.as_bytes();
    let mut chunks = bytes.chunks(CHUNK).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        if (!last && chunk.contains(&b'=')) || BASE64.decode_slice(chunk, &mut buf).is_err() {
            // Rare, so decode the whole text once for the error and its offset.
            return BASE64.decode(bytes).map(drop);
        }
    }
    Ok(())
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Longest accepted `module.oci` reference, in bytes.
pub const MAX_OCI_REFERENCE_LEN: usize = 1024;

/// An OCI reference taken apart: `REGISTRY/REPOSITORY[:TAG][@sha256:<hex>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference<'a> {
    /// `HOST[:PORT]`: always explicit (there is no default registry).
    pub registry: &'a str,
    /// The repository path (lowercase components separated by `/`).
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    /// The manifest digest's 64 hex digits.
    pub digest: Option<&'a str>,
}

impl OciReference<'_> {
    /// `REGISTRY/REPOSITORY`.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// Takes `reference` apart, or says what is wrong with it.
pub fn parse_oci_reference(reference: &str) -> Result<OciReference<'_>, String> {
    if reference.len() > MAX_OCI_REFERENCE_LEN {
        return Err(format!("is longer than {MAX_OCI_REFERENCE_LEN} bytes"));
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, d)) => {
            let hex = d
                .strip_prefix("sha256:")
                .filter(|h| is_sha256_hex(h))
                .ok_or("has a digest that is not sha256:<64 lowercase hex digits>")?;
            (rest, Some(hex))
        }
        None => (reference, None),
    };
    let Some((registry, path)) = rest.split_once('/') else {
        return Err(
            "must be HOST[:PORT]/REPOSITORY:TAG or HOST[:PORT]/REPOSITORY@sha256:<hex>".into(),
        );
    };
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok || !(host.contains('.') || port.is_some() || host == "localhost") {
        return Err(format!(
            "must start with a registry host (HOST[:PORT], with a dot, a port or localhost), not {registry:?}"
        ));
    }
    // The tag follows the last ':' after the last '/'.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (path, None),
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    };
    if !repository.split('/').all(component_ok) {
        return Err(format!(
            "has a repository {repository:?} that is not lowercase letters, digits and . _ - between slashes"
        ));
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(format!(
                "has a tag {t:?} that is not 1 to 128 of A-Z a-z 0-9 . _ -"
            ));
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err("names neither a tag (:TAG) nor a digest (@sha256:<hex>)".into());
    }
    Ok(OciReference {
        registry,
        repository,
        tag,
        digest,
    })
}

fn check_oci_reference(reference: &str) -> Result<(), String> {
    parse_oci_reference(reference).map(|_| ())
}

/// Longest accepted `work_dir`, in bytes.
pub const MAX_WORK_DIR_LEN: usize = 256;

/// A guest path for the job's directory: absolute, normalised (no `.`, `..`, `//` or
/// trailing `/`, except `/` itself), no NUL.
pub fn check_work_dir(dir: &str) -> Result<(), &'static str> {
    if !dir.starts_with('/') {
        return Err("must be an absolute guest path such as /work or /");
    }
    if dir.len() > MAX_WORK_DIR_LEN {
        return Err("is longer than 256 bytes");
    }
    if dir.contains('\0') {
        return Err("contains a NUL byte");
    }
    if dir != "/"
        && dir[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("must be normalised: no empty, '.' or '..' components, no trailing '/'");
    }
    Ok(())
}

/// A path inside the job's directory: relative, non-empty, no `..`, no NUL.
fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.contains('\0') {
        return Err("contains a NUL byte");
    }
    let p = Path::new(path);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("must not contain '..'"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the job's directory");
            }
        }
    }
    if p.components().all(|c| c == Component::CurDir) {
        return Err("names no file");
    }
    Ok(())
}

/// A volume mount point: absolute, no `..`, not `/`, and not the job's directory
/// (`work_dir`) or inside it, unless that is `/` (where the longest preopen wins).
fn check_volume_mount(guest: &str, work_dir: &str) -> Result<(), &'static str> {
    let p = Path::new(guest);
    if !p.is_absolute() {
        return Err("must be an absolute guest path such as /data");
    }
    if guest.contains('\0') {
        return Err("contains a NUL byte");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err("must not contain '..'");
    }
    if p == Path::new("/") {
        return Err("must not be /");
    }
    if work_dir != "/" && p.starts_with(work_dir) {
        return Err("must not be the job's directory (work_dir) or inside it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_references_are_taken_apart_or_refused_with_a_reason() {
        let hex = "a".repeat(64);
        let r = parse_oci_reference("127.0.0.1:5000/team/tool:v1.2").unwrap();
        assert_eq!(
            (r.registry, r.repository, r.tag, r.digest),
            ("127.0.0.1:5000", "team/tool", Some("v1.2"), None)
        );
        assert_eq!(r.repository_path(), "127.0.0.1:5000/team/tool");
        let pinned = format!("registry.example/tool@sha256:{hex}");
        let r = parse_oci_reference(&pinned).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(hex.as_str())));
        assert!(parse_oci_reference(&format!("localhost/t:1@sha256:{hex}")).is_ok());
        for (bad, why) in [
            ("tool:v1", "must be HOST"),
            ("docker/tool:v1", "registry host"),
            ("registry.example/Tool:v1", "repository"),
            ("registry.example/tool", "neither a tag"),
            ("registry.example/tool:", "tag"),
            ("registry.example/tool@sha256:abc", "digest"),
            ("registry.example:port/tool:1", "registry host"),
            ("registry.example//tool:1", "repository"),
        ] {
            let e = parse_oci_reference(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let job = decode_job(br#"{"module":{"oci":"tool:v1"}}"#)
            .map(|_| ())
            .unwrap_err();
        assert!(job.0.message.contains("module.oci"), "{}", job.0.message);
    }

    fn decode(s: &str) -> Result<Job, Rejection> {
        decode_job(s.as_bytes()).map_err(|(r, _, _)| r)
    }

    #[test]
    fn minimal_job_gets_an_id() {
        let job = decode(r#"{"module":{"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#)
            .unwrap();
        assert_eq!(job.id().len(), 36);
        assert!(job.args.is_empty());
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let err = decode(r#"{"module":{"base64":""},"limit":{}}"#).unwrap_err();
        assert_eq!(err.code, codes::INVALID_JOB);
        assert!(err.message.contains("`limit`"), "{}", err.message);
    }

    #[test]
    fn salvages_id_of_a_broken_job() {
        let (r, id, batch) = decode_job(br#"{"id":"j1","batch":"b","module":7}"#).unwrap_err();
        assert_eq!(r.code, codes::INVALID_JOB);
        assert_eq!(id.as_deref(), Some("j1"));
        assert_eq!(batch.as_deref(), Some("b"));
    }

    #[test]
    fn a_rejection_returns_only_a_valid_id_and_batch() {
        // A batch is a routing key `<batch>.<status>`: one with dots, or longer than a
        // routing key may be, must not come back to route the rejection.
        let long = "b".repeat(300);
        for bad in ["a.b", "#", long.as_str()] {
            let broken = serde_json::json!({"id": "j", "batch": bad, "module": 7}).to_string();
            let (r, id, batch) = decode_job(broken.as_bytes()).unwrap_err();
            assert_eq!(r.code, codes::INVALID_JOB);
            assert_eq!((id.as_deref(), batch), (Some("j"), None), "{bad}");
            let invalid = serde_json::json!({"id": "j", "batch": bad, "module": {"base64": ""}});
            let (r, id, batch) = decode_job(invalid.to_string().as_bytes()).unwrap_err();
            assert_eq!(r.code, codes::INVALID_FIELD);
            assert_eq!((id.as_deref(), batch), (Some("j"), None), "{bad}");
        }
        let long_id = "i".repeat(MAX_ID_LEN + 1);
        for bad in [long_id.as_str(), "a\nb", ""] {
            let invalid = serde_json::json!({"id": bad, "batch": "b", "module": {"base64": ""}});
            let (r, id, batch) = decode_job(invalid.to_string().as_bytes()).unwrap_err();
            assert_eq!(r.code, codes::INVALID_FIELD);
            assert_eq!((id, batch.as_deref()), (None, Some("b")), "{bad:?}");
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let cases = [
            (
                r#""args":5"#,
                "invalid job: args: invalid type: integer `5`",
            ),
            (r#""args":["a",7]"#, "invalid job: args[1]: invalid type"),
            (r#""env":{"A":1}"#, r#"invalid job: env["A"]: invalid type"#),
            (
                r#""files":{"a/b":5}"#,
                r#"invalid job: files["a/b"]: invalid type"#,
            ),
            (
                r#""files":{"a":{"base64":1}}"#,
                r#"invalid job: files["a"].base64: invalid type"#,
            ),
            (
                r#""files":{"a":{"base64":"","mode":1}}"#,
                r#"invalid job: files["a"].mode: unknown field `mode`"#,
            ),
            (
                r#""limits":{"fuel":-1}"#,
                "invalid job: limits.fuel: invalid",
            ),
            (
                r#""limits":{"fule":1}"#,
                "invalid job: limits.fule: unknown field `fule`",
            ),
            (
                r#""kind":"reactor""#,
                "invalid job: kind: unknown variant `reactor`",
            ),
            (
                r#""kind":7"#,
                "invalid job: kind: invalid type: integer `7`, expected one of command,",
            ),
            (
                r#""kind":{"function":null}"#,
                "invalid job: kind: invalid type: map, expected one of command,",
            ),
        ];
        for (field, expected) in cases {
            let err = decode(&format!(r#"{{"module":{{"base64":""}},{field}}}"#)).unwrap_err();
            assert_eq!(err.code, codes::INVALID_JOB);
            assert!(
                err.message.starts_with(expected),
                "{field}: {}",
                err.message
            );
        }
        let modules = [
            (
                r#"{"sha256":5}"#,
                "module.sha256: invalid type: integer `5`",
            ),
            (
                r#"7"#,
                "module: invalid type: integer `7`, expected an object with one key",
            ),
            (
                r#"{}"#,
                "module: invalid length 0, expected an object with one key",
            ),
            (
                r#"{"url":"x"}"#,
                "module: unknown field `url`, expected one of",
            ),
            (
                r#"{"base64":"","sha256":"x"}"#,
                r#"module: a second key "sha256"; expected an object with one key"#,
            ),
        ];
        for (module, expected) in modules {
            let err = decode(&format!(r#"{{"module":{module}}}"#)).unwrap_err();
            assert_eq!(err.code, codes::INVALID_JOB);
            assert!(
                err.message.starts_with(&format!("invalid job: {expected}")),
                "{module}: {}",
                err.message
            );
        }
        // The file content error says what was expected instead of naming an enum.
        let err = decode(r#"{"module":{"base64":""},"files":{"a":5}}"#).unwrap_err();
        assert!(
            err.message
                .contains(r#"expected a string, or an object {"base64": "..."}"#),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_job_and_its_limits_are_objects_not_arrays() {
        let err = decode(r#"[null,null,{"base64":""}]"#).unwrap_err();
        assert_eq!(err.code, codes::INVALID_JOB);
        assert!(
            err.message
                .starts_with("invalid job: invalid type: sequence, expected an object"),
            "{}",
            err.message
        );
        let err = decode(r#"{"module":{"base64":""},"limits":[5]}"#).unwrap_err();
        assert!(
            err.message
                .starts_with("invalid job: limits: invalid type: sequence, expected an object"),
            "{}",
            err.message
        );
        for not_an_object in ["7", "\"job\"", "null", "true"] {
            let err = decode(not_an_object).unwrap_err();
            assert!(
                err.message.contains("expected an object"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn repeated_keys_are_refused() {
        let cases = [
            (r#""id":"a","id":"b""#, "invalid job: duplicate field `id`"),
            (
                r#""env":{"A":"1","A":"2"}"#,
                r#"invalid job: env: duplicate key "A""#,
            ),
            (
                r#""files":{"a":"1","a":"2"}"#,
                r#"invalid job: files: duplicate key "a""#,
            ),
            (
                r#""volumes":{"/d":"x","/d":"y"}"#,
                r#"invalid job: volumes: duplicate key "/d""#,
            ),
            (
                r#""limits":{"fuel":1,"fuel":2}"#,
                "invalid job: limits: duplicate field `fuel`",
            ),
        ];
        for (fields, expected) in cases {
            let err = decode(&format!(r#"{{{fields},"module":{{"base64":""}}}}"#)).unwrap_err();
            assert_eq!(err.code, codes::INVALID_JOB);
            assert!(
                err.message.starts_with(expected),
                "{fields}: {}",
                err.message
            );
        }
    }

    #[test]
    fn base64_that_does_not_decode_is_refused_with_its_field() {
        let cases = [
            (
                r#""module":{"base64":"!!!!"}"#,
                "module.base64 does not decode: ",
            ),
            (
                r##""module":{"base64":""},"stdin_base64":"QQ=""##,
                "stdin_base64 does not decode: ",
            ),
            (
                r#""module":{"base64":""},"kind":"function","input_base64":"Q""#,
                "input_base64 does not decode: ",
            ),
            (
                r#""module":{"base64":""},"files":{"a/b":{"base64":"QR=="}}"#,
                r#"files["a/b"].base64 does not decode: "#,
            ),
        ];
        for (fields, expected) in cases {
            let err = decode(&format!("{{{fields}}}")).unwrap_err();
            assert_eq!(err.code, codes::INVALID_BASE64, "{}", err.message);
            assert!(err.message.starts_with(expected), "{}", err.message);
        }
        let ok =
            r#"{"module":{"base64":"AGFzbQ=="},"stdin_base64":"","files":{"a":{"base64":"QQ=="}}}"#;
        assert!(decode(ok).is_ok());
    }

    #[test]
    fn base64_check_agrees_with_decode_across_chunks() {
        let quads = "QUJD".repeat(1024); // exactly one chunk
        let mut cases = vec![
            String::new(),
            "QQ==".into(),
            "QQ=".into(),
            "QR==".into(),
            format!("{quads}QQ=="),
            format!("{quads}QQ"),
            format!("QQ=={quads}"),
            format!("{}QQ=={quads}", &quads[4..]),
            format!("{quads}{quads}"),
            format!("{quads}{quads}!"),
            format!("{quads}\n{quads}"),
        ];
        cases.push(format!("{}=", &quads[..4095]));
        for text in &cases {
            assert_eq!(
                check_base64(text),
                BASE64.decode(text).map(drop),
                "{} bytes",
                text.len()
            );
        }
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(100_000);
        let cases = [
            serde_json::json!({"module": {"base64": ""}, "files": {format!("../{long}"): ""}}),
            serde_json::json!({"module": {"sha256": long}}),
            serde_json::json!({"module": {"base64": ""}, "args": long}),
            serde_json::json!({"module": {"base64": ""}, long.clone(): 1}),
            serde_json::json!({"module": {"base64": ""}, "env": {long.clone(): 1}}),
            serde_json::json!({"module": {"base64": ""}, "files": {long.clone(): {"base64": "!"}}}),
        ];
        for job in cases {
            let err = decode(&job.to_string()).unwrap_err();
            assert!(
                err.message.len() <= MAX_REJECTION_LEN,
                "{}",
                err.message.len()
            );
            assert!(err.message.contains("xxxxxxxx"), "{}", err.message);
        }
        let job = serde_json::json!({"module": {"base64": ""}, "collect": [format!("/{long}")]});
        let err = decode(&job.to_string()).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                r#"collect entry "/{}"... must be relative to the job's directory"#,
                &long[..63]
            )
        );
    }

    #[test]
    fn an_empty_export_is_refused_as_empty() {
        // It was refused as naming "the function of a kind function job" while the job was
        // of kind function.
        let err = decode(r#"{"kind":"function","export":"","module":{"base64":""}}"#).unwrap_err();
        assert_eq!(err.code, codes::INVALID_FIELD);
        assert!(
            err.message.starts_with("export is empty"),
            "{}",
            err.message
        );
    }

    #[test]
    fn escaping_paths_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "."] {
            let json = serde_json::json!({"module": {"base64": ""}, "files": {bad: "x"}});
            let err = decode(&json.to_string()).unwrap_err();
            assert_eq!(err.code, codes::INVALID_FIELD, "{bad}: {}", err.message);
        }
        let json = serde_json::json!({"module": {"base64": ""}, "collect": ["../*"]});
        assert!(decode(&json.to_string()).is_err());
    }

    #[test]
    fn expires_at_is_rfc3339_in_utc() {
        let job = |at: &str| serde_json::json!({"module": {"base64": ""}, "expires_at": at});
        let ok = decode(&job("2026-12-01T16:00:00Z").to_string()).unwrap();
        let at = ok.expiry().unwrap();
        let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_796_140_800);
        let frac = decode(&job("2026-12-01T16:00:00.250Z").to_string()).unwrap();
        assert_eq!(
            frac.expiry().unwrap().duration_since(at).unwrap(),
            std::time::Duration::from_millis(250)
        );
        for (bad, why) in [
            ("2026-12-01T17:00:00+01:00", "must be in UTC"),
            ("2026-12-01T16:00:00-00:00", "must be in UTC"),
            ("2026-12-01 16:00", "is not an RFC 3339"),
            ("tomorrow", "is not an RFC 3339"),
            ("2026-13-01T16:00:00Z", "is not an RFC 3339"),
        ] {
            let err = decode(&job(bad).to_string()).unwrap_err();
            assert_eq!(err.code, codes::INVALID_FIELD, "{bad}");
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
        let none = decode(r#"{"module":{"base64":""}}"#).unwrap();
        assert_eq!(none.expiry(), None);
    }

    #[test]
    fn volume_mount_points_are_checked() {
        for bad in ["data", "/work", "/work/x", "/", "/a/../b"] {
            let json = serde_json::json!({"module": {"base64": ""}, "volumes": {bad: "v"}});
            assert!(decode(&json.to_string()).is_err(), "{bad}");
        }
        let json = serde_json::json!({"module": {"base64": ""}, "volumes": {"/data": "v"}});
        assert!(decode(&json.to_string()).is_ok());
    }

    #[test]
    fn bad_sha256_and_batch_are_refused() {
        assert!(decode(r#"{"module":{"sha256":"ABC"}}"#).is_err());
        assert!(decode(r#"{"batch":"a.b","module":{"base64":""}}"#).is_err());
        assert!(decode(r#"{"batch":"nightly-2026:01","module":{"base64":""}}"#).is_ok());
    }

    #[test]
    fn kinds_and_their_fields() {
        let job = decode(r#"{"kind":"function","export":"f","input":"x","module":{"base64":""}}"#)
            .unwrap();
        assert_eq!(
            (job.kind, job.export.as_deref()),
            (Some(JobKind::Function), Some("f"))
        );
        // No kind: the module decides when it is run.
        assert_eq!(decode(r#"{"module":{"base64":""}}"#).unwrap().kind, None);
        assert!(decode(r#"{"input":"x","export":"f","module":{"base64":""}}"#).is_ok());
        assert!(decode(r#"{"kind":"command","input":"x","module":{"base64":""}}"#).is_err());
        assert!(decode(r#"{"kind":"handler","export":"f","module":{"base64":""}}"#).is_err());
        let err = decode(r#"{"kind":"reactor","module":{"base64":""}}"#).unwrap_err();
        assert!(
            err.message.contains("unknown variant `reactor`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_kind_is_detected_from_what_the_module_exports() {
        let core = |command, function| Exports {
            component: false,
            command,
            function,
        };
        let comp = |command, function| Exports {
            component: true,
            command,
            function,
        };
        use JobKind::*;
        assert_eq!(JobKind::detect(core(true, false), false), Some(Command));
        assert_eq!(JobKind::detect(core(false, true), false), Some(Function));
        assert_eq!(JobKind::detect(core(true, true), false), Some(Command));
        assert_eq!(JobKind::detect(core(true, true), true), Some(Function));
        // The job's input says function; the run then explains what the module lacks.
        assert_eq!(JobKind::detect(core(true, false), true), Some(Function));
        assert_eq!(JobKind::detect(core(false, false), false), None);
        assert_eq!(JobKind::detect(comp(true, false), false), Some(Component));
        assert_eq!(JobKind::detect(comp(false, true), false), Some(Handler));
        assert_eq!(JobKind::detect(comp(true, true), true), Some(Handler));
        assert_eq!(JobKind::detect(comp(false, false), false), None);
        assert_eq!(JobKind::detect(comp(true, false), true), Some(Handler));
    }

    #[test]
    fn work_dir_is_an_absolute_normalised_path() {
        for good in ["/", "/work", "/home/user", "/a-b_c.d"] {
            let json = serde_json::json!({"module": {"base64": ""}, "work_dir": good});
            assert!(decode(&json.to_string()).is_ok(), "{good}");
        }
        for bad in [
            "", "work", "./work", "/work/", "//", "/a//b", "/a/./b", "/a/..", "/a\0b",
        ] {
            let json = serde_json::json!({"module": {"base64": ""}, "work_dir": bad});
            let err = decode(&json.to_string()).unwrap_err();
            assert_eq!(err.code, codes::INVALID_FIELD, "{bad}: {}", err.message);
            assert!(err.message.starts_with("work_dir "), "{}", err.message);
        }
        let long = format!("/{}", "a".repeat(MAX_WORK_DIR_LEN));
        let json = serde_json::json!({"module": {"base64": ""}, "work_dir": long});
        assert!(decode(&json.to_string()).is_err());
    }

    #[test]
    fn volumes_stay_out_of_the_job_directory_unless_it_is_the_root() {
        let job = |work_dir: Option<&str>, mount: &str| {
            let mut j = serde_json::json!({"module": {"base64": ""}, "volumes": {mount: "ref"}});
            if let Some(w) = work_dir {
                j["work_dir"] = w.into();
            }
            decode(&j.to_string())
        };
        assert!(job(None, "/work/x").is_err());
        assert!(job(None, "/data").is_ok());
        assert!(job(Some("/home/u"), "/work/x").is_ok());
        assert!(job(Some("/home/u"), "/home/u").is_err());
        assert!(job(Some("/home/u"), "/home/u/data").is_err());
        assert!(job(Some("/"), "/data").is_ok());
        assert!(job(Some("/"), "/").is_err());
    }

    #[test]
    fn file_content_round_trips_binary() {
        let bytes = vec![0xff, 0x00, 0x10];
        let c = FileContent::from_bytes(bytes.clone());
        assert!(matches!(c, FileContent::Binary { .. }));
        assert_eq!(c.to_bytes().unwrap(), bytes);
        let t = FileContent::from_bytes(b"hi".to_vec());
        assert_eq!(t, FileContent::Text("hi".into()));
    }
}
