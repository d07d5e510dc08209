//! The JSON Schemas (draft 2020-12) of the wire types, generated from the types
//! themselves: [`job`] for a job message, [`result`] for a result. They are committed
//! under `docs/schema/`, and a test fails when the committed files and the types differ.
//!
//! A schema says what a well-formed message looks like; the worker checks more than a
//! schema can (limits against its own maximum, paths, base64 contents) and says why in a
//! `rejected` result.

use serde_json::Value;

use crate::{Job, JobResult};

/// The schema of a job message (what a worker accepts from the jobs queue).
pub fn job() -> Value {
    let mut schema = schemars::schema_for!(Job);
    schema.insert(
        "$id".into(),
        "https://wasmq.invalid/schema/job.schema.json".into(),
    );
    schema.to_value()
}

/// The schema of a result message.
pub fn result() -> Value {
    let mut schema = schemars::schema_for!(JobResult);
    schema.insert(
        "$id".into(),
        "https://wasmq.invalid/schema/result.schema.json".into(),
    );
    schema.to_value()
}

/// A schema as committed: pretty JSON and a final newline.
pub fn to_file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}
