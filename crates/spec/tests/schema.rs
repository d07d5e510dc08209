//! The committed JSON Schemas under docs/schema/ are the ones the wire types generate.
//! After changing a wire type, regenerate them with
//! `WASMQ_BLESS_SCHEMA=1 cargo test -p wasmq-spec --test schema`.

use std::path::PathBuf;

use serde_json::{Value, json};
use wasmq_spec::schema;

fn check(name: &str, generated: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/schema")
        .join(name);
    let text = schema::to_file_text(&generated);
    if std::env::var_os("WASMQ_BLESS_SCHEMA").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with WASMQ_BLESS_SCHEMA=1 cargo test -p wasmq-spec --test schema",
            path.display()
        )
    });
    assert!(
        committed == text,
        "{} differs from the schema the wire types generate; regenerate it with WASMQ_BLESS_SCHEMA=1 cargo test -p wasmq-spec --test schema",
        path.display()
    );
}

#[test]
fn the_committed_job_schema_is_the_generated_one() {
    check("job.schema.json", schema::job());
}

#[test]
fn the_committed_result_schema_is_the_generated_one() {
    check("result.schema.json", schema::result());
}

#[test]
fn the_schemas_say_what_the_types_require() {
    let job = schema::job();
    assert_eq!(job["required"], json!(["module"]));
    assert_eq!(job["additionalProperties"], json!(false));
    let result = schema::result();
    let statuses = &result["$defs"]["Status"];
    let text = statuses.to_string();
    for s in wasmq_spec::Status::ALL {
        assert!(
            text.contains(&format!("\"{}\"", s.as_str())),
            "{s:?} missing from {text}"
        );
    }
    let required = result["required"].as_array().unwrap();
    for field in [
        "id", "status", "code", "message", "stdout", "stderr", "timings",
    ] {
        assert!(
            required.contains(&json!(field)),
            "{field} not required: {required:?}"
        );
    }
}
