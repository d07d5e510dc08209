//! A message into a [`Job`] ([`decode_job`]): JSON that is an object with no repeated
//! keys, then the structural checks; a rejection names the field at fault and quotes
//! values shortened.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::validate::{valid_batch, valid_id};
use super::{Job, Shown};
use crate::reject::{Rejection, codes};

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
        Err(e) => {
            let (id, batch) = salvage_id(bytes);
            Err((
                Rejection::new(codes::INVALID_JOB, capped(e.to_string())),
                id,
                batch,
            ))
        }
    }
}

/// Why a message does not parse as a job; its text is the rejection's message:
/// `invalid job: limits.timeout_ms: invalid type: ...`.
#[derive(Debug, thiserror::Error)]
enum ParseError {
    /// At a field (`limits.fuel`, `args[2]`, `files["a"].base64`).
    #[error("invalid job: {field}: {source}")]
    AtField {
        field: String,
        source: serde_json::Error,
    },
    /// At the top level: JSON syntax, a missing or unknown field, trailing characters.
    #[error("invalid job: {0}")]
    Whole(#[source] serde_json::Error),
}

/// Parses a job, or says why not, naming the field at fault when there is one.
fn parse(bytes: &[u8]) -> Result<Job, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let parsed = object_only::<_, Job>(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    match parsed {
        Ok(job) => match de.end() {
            Ok(()) => Ok(job),
            Err(e) => Err(ParseError::Whole(e)),
        },
        Err(e) => match field_path(&track.path()) {
            Some(field) => Err(ParseError::AtField { field, source: e }),
            None => Err(ParseError::Whole(e)),
        },
    }
}

/// A struct from a JSON object only. Derived struct impls also take an array of the
/// fields in order, which would make `[null, null, {"base64": ""}]` a job: the format has
/// no such form, and a field would depend on its position instead of its name.
pub(super) fn object_only<'de, D, T>(d: D) -> Result<T, D::Error>
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
pub(super) fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::MAX_ID_LEN;
    use crate::job::decode_text as decode;

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
}
