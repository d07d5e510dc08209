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
