//! The structural checks of a job, which need no worker state ([`Job::validate`]): ids
//! and names, fields that exclude each other or need a kind, guest paths, the expiry
//! time, and base64 texts.

use std::path::{Component, Path};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    FileContent, Job, JobKind, MAX_BATCH_LEN, MAX_ID_LEN, MAX_INVOKE_LEN, ModuleRef, Shown,
    is_sha256_hex, parse_oci_reference,
};
use crate::reject::{Rejection, codes};

/// 1 to [`MAX_ID_LEN`] bytes with no control characters.
pub(super) fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

/// 1 to [`MAX_BATCH_LEN`] characters of `A-Z a-z 0-9 - _ :`.
pub(super) fn valid_batch(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_BATCH_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

/// Why an `expires_at` is refused; its text completes a sentence that names the field.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExpiryError {
    /// Not an RFC 3339 date and time.
    #[error("is not an RFC 3339 date and time (2026-12-01T16:00:00Z)")]
    NotRfc3339(#[source] time::error::Parse),
    /// An offset other than `Z`.
    #[error("must be in UTC, ending in Z")]
    NotUtc,
}

/// An RFC 3339 date and time in UTC (`Z`) as a point in time.
pub(super) fn parse_utc(text: &str) -> Result<SystemTime, ExpiryError> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(text, &Rfc3339).map_err(ExpiryError::NotRfc3339)?;
    if !t.offset().is_utc() || !text.ends_with(['Z', 'z']) {
        return Err(ExpiryError::NotUtc);
    }
    Ok(SystemTime::from(t))
}

fn invalid(message: String) -> Rejection {
    Rejection::new(codes::INVALID_FIELD, message)
}

impl Job {
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
            && let Err(why) = parse_oci_reference(reference)
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
        if let Some(hosts) = &self.allowed_outbound_hosts {
            crate::outbound::parse_outbound_hosts(hosts)
                .map_err(|e| invalid(format!("allowed_outbound_hosts: {e}")))?;
        }
        self.check_base64()
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

/// Longest accepted `work_dir`, in bytes.
pub const MAX_WORK_DIR_LEN: usize = 256;

/// Why a guest path is refused; its text completes a sentence that names the path
/// (`work_dir "/a/" must be normalised: ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty.
    #[error("is empty")]
    Empty,
    /// Not absolute, where an absolute guest path such as `example` is needed.
    #[error("must be an absolute guest path such as {example}")]
    NotAbsolute {
        /// An absolute path that would do.
        example: &'static str,
    },
    /// Longer than `max` bytes.
    #[error("is longer than {max} bytes")]
    TooLong {
        /// The longest accepted, in bytes.
        max: usize,
    },
    /// A NUL byte.
    #[error("contains a NUL byte")]
    Nul,
    /// Empty, `.` or `..` components, or a trailing `/`.
    #[error("must be normalised: no empty, '.' or '..' components, no trailing '/'")]
    NotNormalised,
    /// A `..` component.
    #[error("must not contain '..'")]
    ParentDir,
    /// Absolute, where a path inside the job's directory is needed.
    #[error("must be relative to the job's directory")]
    NotRelative,
    /// Only `.` components.
    #[error("names no file")]
    NoFile,
    /// `/`, where a volume is mounted.
    #[error("must not be /")]
    Root,
    /// The job's directory or a path inside it, where a volume is mounted.
    #[error("must not be the job's directory (work_dir) or inside it")]
    InWorkDir,
}

/// A guest path for the job's directory: absolute, normalised (no `.`, `..`, `//` or
/// trailing `/`, except `/` itself), no NUL.
pub fn check_work_dir(dir: &str) -> Result<(), PathError> {
    if !dir.starts_with('/') {
        return Err(PathError::NotAbsolute {
            example: "/work or /",
        });
    }
    if dir.len() > MAX_WORK_DIR_LEN {
        return Err(PathError::TooLong {
            max: MAX_WORK_DIR_LEN,
        });
    }
    if dir.contains('\0') {
        return Err(PathError::Nul);
    }
    if dir != "/"
        && dir[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PathError::NotNormalised);
    }
    Ok(())
}

/// A path inside the job's directory: relative, non-empty, no `..`, no NUL.
fn check_relative(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let p = Path::new(path);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(PathError::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(PathError::NotRelative),
        }
    }
    if p.components().all(|c| c == Component::CurDir) {
        return Err(PathError::NoFile);
    }
    Ok(())
}

/// A volume mount point: absolute, no `..`, not `/`, and not the job's directory
/// (`work_dir`) or inside it, unless that is `/` (where the longest preopen wins).
fn check_volume_mount(guest: &str, work_dir: &str) -> Result<(), PathError> {
    let p = Path::new(guest);
    if !p.is_absolute() {
        return Err(PathError::NotAbsolute { example: "/data" });
    }
    if guest.contains('\0') {
        return Err(PathError::Nul);
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::ParentDir);
    }
    if p == Path::new("/") {
        return Err(PathError::Root);
    }
    if work_dir != "/" && p.starts_with(work_dir) {
        return Err(PathError::InWorkDir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::decode_text as decode;

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
}
