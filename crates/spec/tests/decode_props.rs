//! Properties of `decode_job`, the function every message from the queue goes through:
//! whatever the bytes, it returns a valid job or a rejection with a documented code and a
//! message that names what is wrong; it never panics and its recursion is bounded.
//!
//! 512 cases per property (12 for the large inputs) keep the file to a few seconds in a
//! debug build. For a longer search, set `PROPTEST_CASES` and build in release:
//! `PROPTEST_CASES=20000 cargo test -p wasmq-spec --release --test decode_props`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use wasmq_spec::job::{MAX_BATCH_LEN, MAX_ID_LEN, MAX_REJECTION_LEN};
use wasmq_spec::{
    FileContent, Job, JobKind, LimitPolicy, Limits, LimitsRequest, ModuleRef, Rejection, codes,
    decode_job,
};

/// The codes docs/job-format.md lists for status `rejected`.
const DOCUMENTED_REJECTED: &[&str] = &[
    "invalid_job",
    "invalid_field",
    "invalid_base64",
    "module_not_found",
    "module_path_not_allowed",
    "module_too_large",
    "invalid_module",
    "wrong_kind",
    "unknown_import",
    "no_entry_point",
    "abi_mismatch",
    "unknown_volume",
    "limit_above_maximum",
];

/// The ones a decoder can give: the others need a worker (its store, engine, volumes).
const DECODER_CODES: &[&str] = &[
    codes::INVALID_JOB,
    codes::INVALID_FIELD,
    codes::INVALID_BASE64,
];

/// Every top-level field of a job.
const FIELDS: &[&str] = &[
    "id",
    "batch",
    "module",
    "kind",
    "export",
    "input",
    "input_base64",
    "args",
    "env",
    "stdin",
    "stdin_base64",
    "work_dir",
    "files",
    "collect",
    "volumes",
    "limits",
];

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

fn valid_batch(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_BATCH_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

/// The invariants that hold for any input, checked; the decoder's answer, returned.
fn check(bytes: &[u8]) -> Result<Result<Job, Rejection>, TestCaseError> {
    match decode_job(bytes) {
        Ok(job) => {
            // The format has one form: a JSON object.
            prop_assert!(
                matches!(serde_json::from_slice(bytes), Ok(Value::Object(_))),
                "a job from something other than a JSON object"
            );
            prop_assert!(job.id.as_deref().is_some_and(valid_id), "id {:?}", job.id);
            prop_assert_eq!(job.validate(), Ok(()));
            // What a valid job encodes to is the same job.
            let again = serde_json::to_vec(&job).unwrap();
            match decode_job(&again) {
                Ok(back) => prop_assert_eq!(&back, &job),
                Err((r, ..)) => {
                    return Err(TestCaseError::fail(format!(
                        "a decoded job does not decode again: {r}"
                    )));
                }
            }
            Ok(Ok(job))
        }
        Err((r, id, batch)) => {
            prop_assert!(DECODER_CODES.contains(&r.code), "code {:?}", r.code);
            prop_assert!(DOCUMENTED_REJECTED.contains(&r.code), "code {:?}", r.code);
            prop_assert!(!r.message.trim().is_empty(), "empty message");
            prop_assert!(
                r.message.len() <= MAX_REJECTION_LEN,
                "{} bytes",
                r.message.len()
            );
            // What comes back with a rejection routes it: it must follow the rules.
            prop_assert!(id.as_deref().is_none_or(valid_id), "id {id:?}");
            prop_assert!(batch.as_deref().is_none_or(valid_batch), "batch {batch:?}");
            Ok(Err(r))
        }
    }
}

/// The invariants that hold for any input, checked.
fn holds(bytes: &[u8]) -> Result<(), TestCaseError> {
    check(bytes).map(drop)
}

/// The rejection for `bytes`, with the invariants checked, or a failure if it decodes.
fn rejected(bytes: &[u8]) -> Result<Rejection, TestCaseError> {
    match check(bytes)? {
        Ok(job) => Err(TestCaseError::fail(format!("accepted: {job:?}"))),
        Err(r) => Ok(r),
    }
}

// ---------------------------------------------------------------------------------------
// Valid jobs

fn b64() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| BASE64.encode(b))
}

/// A path below /work: segments that are never `.` or `..`, maybe after a `./`.
fn rel_path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,7}", 1..4),
    )
        .prop_map(|(dot, segs)| format!("{}{}", if dot { "./" } else { "" }, segs.join("/")))
}

fn glob() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z*?][a-z0-9*?.]{0,5}|\\*\\*", 1..4).prop_map(|s| s.join("/"))
}

fn content() -> impl Strategy<Value = FileContent> {
    prop_oneof![
        any::<String>().prop_map(FileContent::Text),
        b64().prop_map(|base64| FileContent::Binary { base64 }),
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{1,40}",
        "[a-z]{256}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ]
    .prop_filter("id rules", |s| valid_id(s))
}

fn module() -> impl Strategy<Value = ModuleRef> {
    prop_oneof![
        "[0-9a-f]{64}".prop_map(ModuleRef::Sha256),
        b64().prop_map(ModuleRef::Base64),
        // The decoder takes path modules (the local tools turn them into sha256); a worker
        // refuses them later with module_path_not_allowed.
        "[a-z0-9/._-]{1,30}".prop_map(|p| ModuleRef::Path(PathBuf::from(p))),
    ]
}

/// Kind, export, input and input_base64, consistent with one another.
fn kind_and_input() -> impl Strategy<
    Value = (
        Option<JobKind>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
> {
    let kind = prop_oneof![
        Just(None),
        Just(Some(JobKind::Command)),
        Just(Some(JobKind::Component)),
        Just(Some(JobKind::Function)),
        Just(Some(JobKind::Handler)),
    ];
    (
        kind,
        prop::option::of("[a-z_][a-z0-9_]{0,11}"),
        0..3u8,
        any::<String>(),
        b64(),
    )
        .prop_map(|(kind, export, which, text, b64)| {
            // Without a kind, the module decides; a job may still give input and export.
            let export = export.filter(|_| kind.is_none_or(|k| k == JobKind::Function));
            let (input, input_base64) = match (kind.is_none_or(JobKind::takes_input), which) {
                (true, 1) => (Some(text), None),
                (true, 2) => (None, Some(b64)),
                _ => (None, None),
            };
            (kind, export, input, input_base64)
        })
}

fn limits() -> impl Strategy<Value = LimitsRequest> {
    let m = Limits::MAXIMUM;
    let streams = (
        prop::option::of(0..=m.stdout_bytes),
        prop::option::of(0..=m.stderr_bytes),
        prop::option::of(0..=m.output_bytes),
    );
    let counts = (
        prop::option::of(1..=m.instances),
        prop::option::of(0..=m.tables),
        prop::option::of(0..=m.memories),
    );
    let http = (
        prop::option::of(0..=m.http_requests),
        prop::option::of(0..=m.http_response_bytes),
        prop::option::of(0..=m.http_connect_timeout_ms),
        prop::option::of(0..=m.http_first_byte_timeout_ms),
    );
    (
        prop::option::of(1..=m.timeout_ms),
        prop::option::of(any::<u64>()),
        prop::option::of(0..=m.memory_bytes),
        streams,
        prop::option::of(0..=m.disk_bytes),
        prop::option::of(0..=m.files),
        counts,
        http,
    )
        .prop_map(
            |(timeout_ms, fuel, memory_bytes, streams, disk_bytes, files, counts, http)| {
                let (stdout_bytes, stderr_bytes, output_bytes) = streams;
                let (instances, tables, memories) = counts;
                let (
                    http_requests,
                    http_response_bytes,
                    http_connect_timeout_ms,
                    http_first_byte_timeout_ms,
                ) = http;
                LimitsRequest {
                    timeout_ms,
                    fuel,
                    memory_bytes,
                    stdout_bytes,
                    stderr_bytes,
                    output_bytes,
                    disk_bytes,
                    files,
                    instances,
                    tables,
                    memories,
                    http_requests,
                    http_response_bytes,
                    http_connect_timeout_ms,
                    http_first_byte_timeout_ms,
                }
            },
        )
}

fn valid_job() -> impl Strategy<Value = Job> {
    let head = (
        prop::option::of(id()),
        prop::option::of("[A-Za-z0-9_:-]{1,128}"),
        module(),
        kind_and_input(),
        prop::collection::vec("[^\\x00]{0,16}", 0..4),
        prop::collection::btree_map("[^=\\x00]{1,10}", "[^\\x00]{0,16}", 0..4),
    );
    let stdin = prop_oneof![
        Just((None, None)),
        any::<String>().prop_map(|s| (Some(s), None)),
        b64().prop_map(|b| (None, Some(b))),
    ];
    let tail = (
        (
            stdin,
            // Never a volume's prefix (below), which would make the job invalid.
            prop::option::of(prop_oneof![
                Just("/".to_owned()),
                Just("/work".to_owned()),
                "/home/[a-z]{1,6}",
            ]),
        ),
        prop::collection::btree_map(rel_path(), content(), 0..4),
        prop::collection::vec(glob(), 0..3),
        prop::collection::btree_map(
            "/(data|ref|mnt|srv/x)(/[a-z]{1,4}){0,2}",
            "[a-z]{1,8}",
            0..3,
        ),
        limits(),
    );
    (head, tail).prop_map(
        |(
            (id, batch, module, (kind, export, input, input_base64), args, env),
            (((stdin, stdin_base64), work_dir), files, collect, volumes, limits),
        )| Job {
            id,
            batch,
            module,
            kind,
            export,
            invoke: None,
            unknown_imports: None,
            input,
            input_base64,
            args,
            env,
            stdin,
            stdin_base64,
            work_dir,
            files,
            collect,
            volumes,
            limits,
            allowed_outbound_hosts: None,
            expires_at: None,
        },
    )
}

/// A valid job as a JSON object, to corrupt.
fn valid_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    valid_job().prop_map(|job| match serde_json::to_value(&job).unwrap() {
        Value::Object(map) => map,
        other => panic!("a job serializes to {other}"),
    })
}

fn bytes_of(map: &serde_json::Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(map).unwrap()
}

// ---------------------------------------------------------------------------------------
// Inputs that are mostly not jobs

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(FIELDS).prop_map(String::from),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\"",
    "\\",
    "null",
    "true",
    "0",
    "-1",
    "1.5",
    "1e999",
    "18446744073709551616",
    "\"id\"",
    "\"batch\"",
    "\"module\"",
    "\"sha256\"",
    "\"base64\"",
    "\"path\"",
    "\"kind\"",
    "\"function\"",
    "\"export\"",
    "\"args\"",
    "\"env\"",
    "\"files\"",
    "\"collect\"",
    "\"volumes\"",
    "\"work_dir\"",
    "\"limits\"",
    "\"timeout_ms\"",
    "\"fuel\"",
    "\"stdin\"",
    "\"stdin_base64\"",
    "\"input_base64\"",
    "\"QQ==\"",
    "\"QQ=\"",
    "\"../x\"",
    "\"/data\"",
    "\"\"",
    "\"a.b\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\u00e9\"",
    "\u{e9}",
    "\u{0}",
];

/// 256 KiB to 1 MiB of noise: from a seed, because a strategy per byte is slow to build.
fn large_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), 256 * 1024..1024 * 1024usize).prop_map(|(seed, len)| {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    })
}

/// Text built from JSON tokens and the format's own names: it gets past the first byte.
fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..64)
        .prop_map(|t| format!("{{{}}}", t.concat()).into_bytes())
}

#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    InsertToken(usize, &'static str),
    Remove(usize),
    Truncate(usize),
    Repeat(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (at, any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (at, prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::InsertToken(i, t)),
        at.prop_map(Edit::Remove),
        at.prop_map(Edit::Truncate),
        (at, 1..64usize).prop_map(|(i, n)| Edit::Repeat(i, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        let pos = |i: usize| if n == 0 { 0 } else { i % (n + 1) };
        match *e {
            Edit::Set(i, b) if n > 0 => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(pos(i), b),
            Edit::InsertToken(i, t) => {
                let at = pos(i);
                bytes.splice(at..at, t.bytes());
            }
            Edit::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(pos(i)),
            Edit::Repeat(i, len) if n > 0 => {
                let start = i % n;
                let piece = bytes[start..(start + len).min(n)].to_vec();
                bytes.splice(start..start, piece);
            }
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// Corruptions of one field, with the code and the field name they must be rejected with

/// A value of a type the field does not take (null is `None` for the optional strings).
fn wrong_type(field: &'static str) -> impl Strategy<Value = Value> {
    let string = prop_oneof![
        Just(json!(7)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(json!(["x"])),
        Just(json!({"x": "y"})),
    ];
    let list = prop_oneof![
        Just(json!("x")),
        Just(json!(7)),
        Just(json!({"x": "y"})),
        Just(json!(null)),
        Just(json!([7])),
        Just(json!([["x"]])),
    ];
    let object = prop_oneof![
        Just(json!("x")),
        Just(json!(7)),
        Just(json!(false)),
        Just(json!(null)),
        Just(json!(["x"])),
        Just(json!([{"timeout_ms": 1}])),
    ];
    match field {
        "args" | "collect" => list.boxed(),
        "env" | "files" | "volumes" | "limits" | "module" => object.boxed(),
        _ => string.boxed(),
    }
}

/// A string that `BASE64.decode` refuses.
fn bad_base64() -> impl Strategy<Value = String> {
    (
        b64(),
        any::<usize>(),
        prop::sample::select(&['!', '-', '_', ' ', '.', '=', '\n', '\u{e9}'][..]),
        0..4u8,
    )
        .prop_map(|(good, at, c, how)| match how {
            0 => {
                let mut s = good;
                let i = at % (s.len() + 1);
                s.insert(i, c);
                s
            }
            1 => format!("{good}{}", &"QUJD"[..1 + at % 3]),
            2 => format!("{good}="),
            _ => format!("{good}QR=="),
        })
        .prop_filter("does not decode", |s| BASE64.decode(s).is_err())
}

/// A `files` key or `collect` entry that is not a path below /work.
fn escaping_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("./.".to_owned()),
        Just("..".to_owned()),
        rel_path().prop_map(|p| format!("../{p}")),
        (rel_path(), rel_path()).prop_map(|(a, b)| format!("{a}/../{b}")),
        rel_path().prop_map(|p| format!("/{p}")),
        rel_path().prop_map(|p| format!("{p}/\0")),
    ]
}

#[derive(Debug, Clone)]
struct Corrupted {
    what: String,
    bytes: Vec<u8>,
    code: &'static str,
    /// How the message must start: it names the field.
    starts: String,
    /// What else it must say.
    also: &'static str,
}

fn corrupted() -> impl Strategy<Value = Corrupted> {
    (valid_object(), 0..14u8, any::<usize>()).prop_flat_map(|(job, which, pick)| {
        let fields: Vec<&'static str> = FIELDS.to_vec();
        let field = fields[pick % fields.len()];
        let job2 = job;
        match which {
            // A field of the wrong type.
            0 => wrong_type(field)
                .prop_map(move |v| {
                    let mut j = job2.clone();
                    j.insert(field.into(), v.clone());
                    Corrupted {
                        what: format!("{field} = {v}"),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_JOB,
                        starts: format!("invalid job: {field}"),
                        also: "invalid type: ",
                    }
                })
                .boxed(),
            // A limit that is not a u64.
            1 => (
                prop::sample::select(
                    &[
                        "timeout_ms",
                        "fuel",
                        "memory_bytes",
                        "stdout_bytes",
                        "stderr_bytes",
                        "output_bytes",
                        "disk_bytes",
                        "files",
                    ][..],
                ),
                prop_oneof![
                    Just(json!(-1)),
                    Just(json!(0.5)),
                    Just(json!("1")),
                    Just(json!(true)),
                    Just(json!([1]))
                ],
            )
                .prop_map(move |(limit, v)| {
                    let mut j = job2.clone();
                    j.insert("limits".into(), json!({ limit: v }));
                    Corrupted {
                        what: format!("limits.{limit} = {v}"),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_JOB,
                        starts: format!("invalid job: limits.{limit}: invalid "),
                        also: "",
                    }
                })
                .boxed(),
            // An unknown field, at the top or in limits.
            2 => ("[a-z_]{1,12}", any::<bool>())
                .prop_filter("unknown", |(n, _)| !FIELDS.contains(&n.as_str()))
                .prop_map(move |(name, in_limits)| {
                    let mut j = job2.clone();
                    let starts = if in_limits {
                        j.insert("limits".into(), json!({ name.clone(): 1 }));
                        format!(
                            "invalid job: limits.{name}: unknown field `{name}`, expected one of"
                        )
                    } else {
                        j.insert(name.clone(), json!(1));
                        format!("invalid job: {name}: unknown field `{name}`, expected one of")
                    };
                    Corrupted {
                        what: format!("unknown {name}"),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_JOB,
                        starts,
                        also: "",
                    }
                })
                .boxed(),
            // Base64 that does not decode, in each place base64 is taken.
            3 => (bad_base64(), 0..4u8, rel_path())
                .prop_map(move |(bad, place, path)| {
                    let mut j = job2.clone();
                    let starts = match place {
                        0 => {
                            j.insert("module".into(), json!({ "base64": bad }));
                            "module.base64".to_owned()
                        }
                        1 => {
                            j.remove("stdin");
                            j.insert("stdin_base64".into(), json!(bad));
                            "stdin_base64".to_owned()
                        }
                        2 => {
                            j.remove("input");
                            j.remove("export");
                            j.insert("kind".into(), json!("handler"));
                            j.insert("input_base64".into(), json!(bad));
                            "input_base64".to_owned()
                        }
                        _ => {
                            j.insert("files".into(), json!({ path.clone(): { "base64": bad } }));
                            format!("files[{path:?}].base64")
                        }
                    };
                    Corrupted {
                        what: format!("bad base64 {bad:?}"),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_BASE64,
                        starts: format!("{starts} does not decode: "),
                        also: "",
                    }
                })
                .boxed(),
            // A files key or collect entry outside /work.
            4 => (escaping_path(), any::<bool>())
                .prop_map(move |(path, in_files)| {
                    let mut j = job2.clone();
                    let starts = if in_files {
                        j.insert("files".into(), json!({ path.clone(): "x" }));
                        "files key "
                    } else {
                        j.insert("collect".into(), json!([path.clone()]));
                        "collect entry "
                    };
                    Corrupted {
                        what: format!("path {path:?}"),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_FIELD,
                        starts: format!("{starts}{path:?} "),
                        also: "",
                    }
                })
                .boxed(),
            // An id too long, empty or with a control character.
            5 => prop_oneof![
                (MAX_ID_LEN + 1..4 * MAX_ID_LEN).prop_map(|n| "i".repeat(n)),
                (MAX_ID_LEN / 2 + 1..MAX_ID_LEN).prop_map(|n| "\u{e9}".repeat(n)),
                Just(String::new()),
                ("[a-z]{0,8}", "[\\x00-\\x1f\\x7f]").prop_map(|(a, c)| format!("{a}{c}")),
            ]
            .prop_map(move |bad| {
                let mut j = job2.clone();
                j.insert("id".into(), json!(bad));
                Corrupted {
                    what: format!("id of {} bytes", bad.len()),
                    bytes: bytes_of(&j),
                    code: codes::INVALID_FIELD,
                    starts: format!("id must be 1 to {MAX_ID_LEN} bytes"),
                    also: "",
                }
            })
            .boxed(),
            // A batch that is no routing key part.
            6 => prop_oneof![
                "[a-z]{129,300}",
                "[a-z]{0,4}[.#* /][a-z]{0,4}",
                Just(String::new()),
            ]
            .prop_map(move |bad| {
                let mut j = job2.clone();
                j.insert("batch".into(), json!(bad));
                Corrupted {
                    what: format!("batch {bad:?}"),
                    bytes: bytes_of(&j),
                    code: codes::INVALID_FIELD,
                    starts: "batch ".into(),
                    also: "",
                }
            })
            .boxed(),
            // A sha256 that is not 64 lowercase hex digits.
            7 => prop_oneof![
                "[0-9a-f]{0,63}",
                "[0-9a-f]{65,70}",
                "[0-9A-F]{64}",
                "[0-9a-g]{63}g"
            ]
            .prop_filter("not a digest", |s| !wasmq_spec::job::is_sha256_hex(s))
            .prop_map(move |bad| {
                let mut j = job2.clone();
                j.insert("module".into(), json!({ "sha256": bad }));
                Corrupted {
                    what: format!("sha256 {bad:?}"),
                    bytes: bytes_of(&j),
                    code: codes::INVALID_FIELD,
                    starts: "module.sha256 ".into(),
                    also: "",
                }
            })
            .boxed(),
            // A field given twice, or a key given twice in env, files or volumes.
            8 => Just(())
                .prop_map(move |()| {
                    let (key, value) = job2
                        .iter()
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap();
                    let rest = String::from_utf8(bytes_of(&job2)).unwrap();
                    let text = format!("{{{}:{},{}", json!(key), value, &rest[1..]);
                    Corrupted {
                        what: format!("{key} twice"),
                        bytes: text.into_bytes(),
                        code: codes::INVALID_JOB,
                        starts: format!("invalid job: duplicate field `{key}`"),
                        also: "",
                    }
                })
                .boxed(),
            9 => (
                prop::sample::select(&["env", "files", "volumes"][..]),
                "[a-z]{1,8}",
            )
                .prop_map(move |(map, key)| {
                    let mut j = job2.clone();
                    j.remove(map);
                    let value = if map == "volumes" { "\"v\"" } else { "\"x\"" };
                    let key = if map == "volumes" {
                        format!("/{key}")
                    } else {
                        key
                    };
                    let rest = String::from_utf8(bytes_of(&j)).unwrap();
                    let text = format!(
                        "{{\"{map}\":{{{k}:{value},{k}:{value}}},{}",
                        &rest[1..],
                        k = json!(key)
                    );
                    Corrupted {
                        what: format!("{map} key {key} twice"),
                        bytes: text.into_bytes(),
                        code: codes::INVALID_JOB,
                        starts: format!("invalid job: {map}: duplicate key {key:?}"),
                        also: "",
                    }
                })
                .boxed(),
            // A module object that has not exactly one known key.
            10 => prop_oneof![
                Just((json!({}), "module: invalid length 0")),
                Just((json!({"sha256": "a", "base64": ""}), "module: a second key")),
                Just((json!({"url": "x"}), "module: unknown field `url`")),
                Just((json!({"base64": 5}), "module.base64: invalid type")),
                Just((json!({"path": ["x"]}), "module.path: invalid type")),
            ]
            .prop_map(move |(v, starts)| {
                let mut j = job2.clone();
                j.insert("module".into(), v.clone());
                Corrupted {
                    what: format!("module {v}"),
                    bytes: bytes_of(&j),
                    code: codes::INVALID_JOB,
                    starts: format!("invalid job: {starts}"),
                    also: "",
                }
            })
            .boxed(),
            // A NUL in an argument, an env key with '='.
            11 => ("[a-z]{0,4}", "[a-z]{0,4}", any::<bool>())
                .prop_map(move |(a, b, in_args)| {
                    let mut j = job2.clone();
                    let (what, starts) = if in_args {
                        j.insert("args".into(), json!([format!("{a}\0{b}")]));
                        ("NUL in args[0]", "args[0] contains a NUL byte".to_owned())
                    } else {
                        let key = format!("{a}={b}");
                        j.insert("env".into(), json!({ key.clone(): "x" }));
                        ("'=' in an env key", format!("env key {key:?} must be"))
                    };
                    Corrupted {
                        what: what.into(),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_FIELD,
                        starts,
                        also: "",
                    }
                })
                .boxed(),
            // A file content of the wrong type or shape.
            12 => (
                rel_path(),
                prop_oneof![
                    Just(json!(5)),
                    Just(json!(null)),
                    Just(json!(["QQ=="])),
                    Just(json!({"base64": "", "mode": 1}))
                ],
            )
                .prop_map(move |(path, v)| {
                    let mut j = job2.clone();
                    j.insert("files".into(), json!({ path.clone(): v.clone() }));
                    Corrupted {
                        what: format!("file content {v}"),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_JOB,
                        starts: format!("invalid job: files[{path:?}]"),
                        also: "",
                    }
                })
                .boxed(),
            // Both forms of stdin.
            _ => (any::<String>(), b64())
                .prop_map(move |(text, b)| {
                    let mut j = job2.clone();
                    j.insert("stdin".into(), json!(text));
                    j.insert("stdin_base64".into(), json!(b));
                    Corrupted {
                        what: "stdin and stdin_base64".into(),
                        bytes: bytes_of(&j),
                        code: codes::INVALID_FIELD,
                        starts: "give stdin or stdin_base64, not both".into(),
                        also: "",
                    }
                })
                .boxed(),
        }
    })
}

// ---------------------------------------------------------------------------------------

/// Cases per property: `PROPTEST_CASES` when set, else 512 (a few seconds in debug).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512)
        .max(40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_bytes_give_a_job_or_a_rejection(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        holds(&bytes)?;
    }

    #[test]
    fn token_soup_gives_a_job_or_a_rejection(bytes in token_soup()) {
        holds(&bytes)?;
    }

    #[test]
    fn any_json_gives_a_job_or_a_rejection(value in any_json()) {
        holds(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn any_value_in_any_field_gives_a_job_or_a_rejection(
        job in valid_object(),
        fields in prop::collection::vec((prop::sample::select(FIELDS), any_json()), 1..3),
    ) {
        let mut job = job;
        for (field, value) in fields {
            job.insert(field.into(), value);
        }
        holds(&bytes_of(&job))?;
    }

    #[test]
    fn edited_jobs_give_a_job_or_a_rejection(
        job in valid_job(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        holds(&apply(serde_json::to_vec(&job).unwrap(), &edits))?;
    }

    #[test]
    fn valid_jobs_round_trip(job in valid_job(), pretty in any::<bool>()) {
        let bytes = if pretty {
            serde_json::to_vec_pretty(&job).unwrap()
        } else {
            serde_json::to_vec(&job).unwrap()
        };
        let decoded = match check(&bytes)? {
            Ok(decoded) => decoded,
            Err(r) => return Err(TestCaseError::fail(format!("valid job rejected: {r}"))),
        };
        let mut expected = job.clone();
        if job.id.is_none() {
            let id = decoded.id();
            let dashes = id.chars().filter(|&c| c == '-').count();
            prop_assert!(id.len() == 36 && dashes == 4, "{id}");
            expected.id = decoded.id.clone();
        }
        prop_assert_eq!(&decoded, &expected);
        // Asking within the maximums, it gets what it asked, and the defaults otherwise.
        let (asked, d) = (&decoded.limits, Limits::DEFAULT);
        let expected = Limits {
            timeout_ms: asked.timeout_ms.unwrap_or(d.timeout_ms),
            fuel: asked.fuel.or(d.fuel),
            memory_bytes: asked.memory_bytes.unwrap_or(d.memory_bytes),
            stdout_bytes: asked.stdout_bytes.unwrap_or(d.stdout_bytes),
            stderr_bytes: asked.stderr_bytes.unwrap_or(d.stderr_bytes),
            output_bytes: asked.output_bytes.unwrap_or(d.output_bytes),
            disk_bytes: asked.disk_bytes.unwrap_or(d.disk_bytes),
            files: asked.files.unwrap_or(d.files),
            instances: asked.instances.unwrap_or(d.instances),
            tables: asked.tables.unwrap_or(d.tables),
            memories: asked.memories.unwrap_or(d.memories),
            http_requests: asked.http_requests.unwrap_or(d.http_requests),
            http_response_bytes: asked.http_response_bytes.unwrap_or(d.http_response_bytes),
            http_connect_timeout_ms: asked
                .http_connect_timeout_ms
                .unwrap_or(d.http_connect_timeout_ms),
            http_first_byte_timeout_ms: asked
                .http_first_byte_timeout_ms
                .unwrap_or(d.http_first_byte_timeout_ms),
        };
        prop_assert_eq!(LimitPolicy::default().resolve(asked), Ok(expected));
    }

    #[test]
    fn corruptions_are_rejected_with_their_code_and_field(c in corrupted()) {
        let r = rejected(&c.bytes)?;
        prop_assert_eq!(r.code, c.code, "{}: {}", c.what, r.message);
        prop_assert!(
            r.message.starts_with(&c.starts),
            "{}: {:?} does not start with {:?}",
            c.what,
            r.message,
            c.starts
        );
        prop_assert!(r.message.contains(c.also), "{}: {:?}", c.what, r.message);
    }

    #[test]
    fn base64_is_refused_exactly_when_it_does_not_decode(
        text in prop_oneof![
            "[A-Za-z0-9+/=]{0,24}",
            ("[A-Za-z0-9+/]{4090,4100}", "[A-Za-z0-9+/=!]{0,8}").prop_map(|(a, b)| a + &b),
        ],
    ) {
        let job = json!({"module": {"base64": ""}, "stdin_base64": text});
        let outcome = check(job.to_string().as_bytes())?;
        match BASE64.decode(&text) {
            Ok(_) => prop_assert!(outcome.is_ok(), "{:?}", outcome),
            Err(e) => {
                let r = outcome.unwrap_err();
                prop_assert_eq!(r.code, codes::INVALID_BASE64);
                prop_assert_eq!(r.message, format!("stdin_base64 does not decode: {e}"));
            }
        }
    }
}

proptest! {
    // Large inputs are slower to build: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(cases() / 40))]

    #[test]
    fn large_inputs_give_a_job_or_a_rejection(
        bytes in large_bytes(),
        job in valid_job(),
        edits in prop::collection::vec(edit(), 0..4),
    ) {
        holds(&bytes)?;
        // The same bytes as a string of a valid job, then edited.
        let mut big = serde_json::to_value(&job).unwrap();
        big["stdin"] = json!(String::from_utf8_lossy(&bytes));
        big.as_object_mut().unwrap().remove("stdin_base64");
        let text = serde_json::to_vec(&big).unwrap();
        prop_assert!(check(&text)?.is_ok());
        holds(&apply(text, &edits))?;
    }
}

// ---------------------------------------------------------------------------------------
// Fixed cases

/// Runs `f` on a thread with a small stack: unbounded recursion on deep input would
/// overflow it and abort the test binary.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn serde_json_nests_at_most_127_levels() {
    // decode_job leans on it: salvaging the id of a broken job parses it as a Value.
    let nested = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
    assert!(serde_json::from_str::<Value>(&nested(127)).is_ok());
    let err = serde_json::from_str::<Value>(&nested(128)).unwrap_err();
    assert!(
        err.to_string().starts_with("recursion limit exceeded"),
        "{err}"
    );
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    const DEPTH: usize = 100_000;
    let open = "[".repeat(DEPTH);
    let objects = "{\"a\":".repeat(DEPTH);
    let cases: Vec<(String, &str)> = vec![
        (
            open.clone(),
            "invalid job: invalid type: sequence, expected an object",
        ),
        (
            format!("{open}{}", "]".repeat(DEPTH)),
            "invalid job: invalid type: sequence",
        ),
        (objects.clone(), "invalid job: a: unknown field `a`"),
        (
            format!(r#"{{"module":{{"base64":""}},"env":{objects}"#),
            r#"invalid job: env["a"]: invalid type: map, expected a string"#,
        ),
        (
            format!(r#"{{"module":{{"base64":""}},"env":{{"A":{open}"#),
            r#"invalid job: env["A"]: invalid type: sequence, expected a string"#,
        ),
        (
            format!(r#"{{"module":{{"base64":""}},"args":[{open}"#),
            "invalid job: args[0]: invalid type: sequence, expected a string",
        ),
        (
            format!(r#"{{"module":{{"base64":""}},"files":{{"a":{objects}"#),
            r#"invalid job: files["a"].a: unknown field `a`, expected `base64`"#,
        ),
        (
            format!(r#"{{"module":{{"base64":""}},"limits":{objects}"#),
            "invalid job: limits.a: unknown field `a`",
        ),
        (
            format!(r#"{{"module":{open}"#),
            "invalid job: module: invalid type: sequence",
        ),
        (
            format!(r#"{{"module":{{"base64":""}},"extra":{open}"#),
            "invalid job: extra: unknown field `extra`",
        ),
        (
            format!(r#"{{"id":"deep","module":{{"base64":""}}}}{open}"#),
            "invalid job: trailing characters",
        ),
    ];
    for (text, starts) in cases {
        let (r, id, _) = on_small_stack(move || decode_job(text.as_bytes()).unwrap_err());
        assert_eq!(r.code, codes::INVALID_JOB);
        assert!(r.message.starts_with(starts), "{starts}: {}", r.message);
        assert_eq!(id, None);
    }
}

#[test]
fn many_files_and_huge_values_decode() {
    let files: BTreeMap<String, FileContent> = (0..20_000)
        .map(|i| {
            (
                format!("d{}/f{i}.txt", i % 100),
                FileContent::Text(i.to_string()),
            )
        })
        .collect();
    let job = json!({
        "id": "big",
        "module": {"base64": BASE64.encode(vec![0u8; 3 * 1024 * 1024])},
        "stdin": "x".repeat(8 * 1024 * 1024),
        "files": files,
    });
    let bytes = serde_json::to_vec(&job).unwrap();
    let decoded = on_small_stack(move || decode_job(&bytes).map_err(|e| e.0)).unwrap();
    assert_eq!(decoded.files.len(), 20_000);
    assert_eq!(decoded.stdin.map(|s| s.len()), Some(8 * 1024 * 1024));
}

#[test]
fn a_path_module_is_decoded_and_left_to_the_worker() {
    // decode_job has no switch to refuse it: the local tools take path modules and upload
    // them; a worker refuses one with module_path_not_allowed when it prepares the run.
    let job = decode_job(br#"{"module":{"path":"/etc/passwd"}}"#).unwrap();
    assert_eq!(job.module, ModuleRef::Path("/etc/passwd".into()));
}

#[test]
fn the_decoder_codes_are_documented() {
    for code in DECODER_CODES {
        assert!(DOCUMENTED_REJECTED.contains(code), "{code}");
    }
}
