//! Registry failures sorted into the job's fault and the host's.

use oci_client::errors::{OciDistributionError, OciErrorCode};
use wasmq_cache::remote::RemoteError;

/// Sorts a failure of `what` (a sentence naming the request) into a [`RemoteError`]:
/// an unknown repository, tag, manifest or blob is `NotFound`; bytes that do not match
/// their digest are `DigestMismatch`; a registry that cannot be reached, answers 5xx or
/// refuses the credentials is `Unavailable` (the host's fault: the operator's registry or
/// configuration, never the job's).
pub(crate) fn classify(what: &str, e: OciDistributionError) -> RemoteError {
    use OciDistributionError as E;
    let text = format!("{what}: {e}");
    match &e {
        E::ImageManifestNotFoundError(_) => RemoteError::NotFound(text),
        E::RegistryError { envelope, .. } => {
            let not_found = envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            });
            if not_found {
                RemoteError::NotFound(text)
            } else {
                RemoteError::Unavailable(text)
            }
        }
        E::ServerError { code: 404, .. } => RemoteError::NotFound(text),
        E::DigestError(_) => RemoteError::DigestMismatch(text),
        E::PullNoLayersError | E::IncompatibleLayerMediaTypeError(_) => RemoteError::NotWasm(text),
        E::RequestError(r) if r.url().is_some_and(|u| u.scheme() == "https") => {
            RemoteError::Unavailable(format!(
                "{what}: {}; it was reached over HTTPS: a registry that speaks plain HTTP must be listed in insecure_registries (--insecure-registry HOST:PORT)",
                chain(&e)
            ))
        }
        _ => RemoteError::Unavailable(format!("{what}: {}", chain(&e))),
    }
}

/// An error and its sources on one line (a connection refused is two levels down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use oci_client::errors::{OciEnvelope, OciError};

    use super::*;

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: String::new(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://registry.example/v2/x".into(),
        }
    }

    #[test]
    fn the_jobs_faults_and_the_hosts_are_told_apart() {
        for code in [
            OciErrorCode::ManifestUnknown,
            OciErrorCode::BlobUnknown,
            OciErrorCode::NameUnknown,
        ] {
            assert!(matches!(
                classify("pulling", envelope(code)),
                RemoteError::NotFound(_)
            ));
        }
        for code in [
            OciErrorCode::Unauthorized,
            OciErrorCode::Denied,
            OciErrorCode::Toomanyrequests,
        ] {
            assert!(matches!(
                classify("pulling", envelope(code)),
                RemoteError::Unavailable(_)
            ));
        }
        let server = |code| OciDistributionError::ServerError {
            code,
            url: String::new(),
            message: String::new(),
        };
        assert!(matches!(
            classify("pulling", server(404)),
            RemoteError::NotFound(_)
        ));
        assert!(matches!(
            classify("pulling", server(503)),
            RemoteError::Unavailable(_)
        ));
        let e = classify(
            "pulling blob sha256:ab",
            OciDistributionError::UnauthorizedError { url: "u".into() },
        );
        assert!(
            matches!(&e, RemoteError::Unavailable(m) if m.starts_with("pulling blob sha256:ab: ")),
            "{e:?}"
        );
    }
}
