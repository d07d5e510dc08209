//! Any bytes given to `decode_job` give a valid job that encodes to itself, or a rejection
//! with a decoder code, a message, and an id and batch that follow their rules.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmq_spec::job::{MAX_BATCH_LEN, MAX_ID_LEN, MAX_REJECTION_LEN};
use wasmq_spec::{codes, decode_job};

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

fn valid_batch(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_BATCH_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

fuzz_target!(|bytes: &[u8]| {
    match decode_job(bytes) {
        Ok(job) => {
            assert!(
                matches!(
                    serde_json::from_slice(bytes),
                    Ok(serde_json::Value::Object(_))
                ),
                "a job from something other than a JSON object"
            );
            assert!(job.id.as_deref().is_some_and(valid_id), "id {:?}", job.id);
            assert_eq!(job.validate(), Ok(()));
            let again = serde_json::to_vec(&job).expect("a job encodes");
            match decode_job(&again) {
                Ok(back) => assert_eq!(back, job),
                Err((r, ..)) => panic!("a decoded job does not decode again: {r}"),
            }
        }
        Err((r, id, batch)) => {
            assert!(
                [
                    codes::INVALID_JOB,
                    codes::INVALID_FIELD,
                    codes::INVALID_BASE64
                ]
                .contains(&r.code),
                "code {:?}",
                r.code
            );
            assert!(!r.message.trim().is_empty(), "empty message");
            assert!(
                r.message.len() <= MAX_REJECTION_LEN,
                "{} bytes",
                r.message.len()
            );
            assert!(id.as_deref().is_none_or(valid_id), "id {id:?}");
            assert!(batch.as_deref().is_none_or(valid_batch), "batch {batch:?}");
        }
    }
});
