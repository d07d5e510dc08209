//! Reading jobs from files, directories and stdin, and uploading `path` modules.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::Context;
use wasmq_cache::Cache;
use wasmq_cache::remote::RemoteError;
use wasmq_registry::Registry;
use wasmq_spec::{Job, JobResult, ModuleRef, Rejection, codes, decode_job};

/// One job read from an input, or the rejected result for what could not be read as one.
pub struct Entry {
    /// Where it came from: `file.jsonl:3`, `file.json`, `file.json[2]`, `-:1`.
    pub origin: String,
    /// The directory `path` modules are relative to.
    pub base: PathBuf,
    pub job: Result<Job, JobResult>,
}

/// Reads every job of every input. A file that cannot be read is an error; a job that
/// cannot be decoded is a rejected result naming its file and line.
pub fn read_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .context("failed to read jobs from stdin")?;
            let cwd = std::env::current_dir().context("no current directory")?;
            parse(&text, "-", &cwd, Framing::Guess, &mut out);
        } else if input.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("failed to list job directory {}", input.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
                .collect();
            files.sort();
            for f in files {
                read_file(&f, &mut out)?;
            }
        } else {
            read_file(input, &mut out)?;
        }
    }
    Ok(out)
}

/// How a job file holds its jobs.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    Lines,
    Document,
    Guess,
}

fn read_file(path: &Path, out: &mut Vec<Entry>) -> anyhow::Result<()> {
    let text = std::fs::read(path)
        .with_context(|| format!("failed to read job file {}", path.display()))?;
    let framing = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => Framing::Lines,
        Some("json") => Framing::Document,
        _ => Framing::Guess,
    };
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    parse(&text, &path.display().to_string(), &base, framing, out);
    Ok(())
}

fn parse(text: &[u8], name: &str, base: &Path, framing: Framing, out: &mut Vec<Entry>) {
    let entry = |origin: String, bytes: &[u8]| Entry {
        job: decode_job(bytes).map_err(|(r, id, batch)| {
            let r = Rejection::new(r.code, format!("{origin}: {}", r.message));
            JobResult::rejected(id.unwrap_or_default(), batch, &r)
        }),
        origin,
        base: base.to_owned(),
    };
    let as_document = match framing {
        Framing::Lines => false,
        Framing::Document => true,
        // One JSON value (object or array) when the whole text parses as one, else lines.
        Framing::Guess => serde_json::from_slice::<serde_json::Value>(text).is_ok(),
    };
    if as_document {
        match serde_json::from_slice::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let bytes = serde_json::to_vec(item).expect("a parsed value serializes");
                    out.push(entry(format!("{name}[{i}]"), &bytes));
                }
            }
            _ => out.push(entry(name.to_owned(), text)),
        }
        return;
    }
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(entry(format!("{name}:{}", i + 1), line));
    }
}

/// Turns `path` modules into `sha256` references, uploading each file once, and pins
/// `oci` references to their manifest digests.
pub struct Uploader<'a> {
    cache: &'a Cache,
    /// When the module store cannot be written, carry the bytes in the job instead.
    inline_fallback: bool,
    /// The registry that pins references, and that modules are pushed to when the module
    /// store is a registry (`push`).
    registry: Option<Arc<Registry>>,
    push: bool,
    seen: HashMap<PathBuf, Result<ModuleRef, String>>,
    pinned: HashMap<String, Result<String, Rejection>>,
}

impl<'a> Uploader<'a> {
    /// An uploader whose failure to store a module rejects the jobs that use it (workers
    /// elsewhere need the module in the shared store).
    pub fn new(cache: &'a Cache) -> Self {
        Uploader {
            cache,
            inline_fallback: false,
            registry: None,
            push: false,
            seen: HashMap::new(),
            pinned: HashMap::new(),
        }
    }

    /// An uploader for jobs run by this process: when the module store cannot be written
    /// (a full or read-only disk) the module travels in the job, with a warning.
    pub fn local(cache: &'a Cache) -> Self {
        Uploader {
            inline_fallback: true,
            ..Uploader::new(cache)
        }
    }

    /// Pins references through `registry`, and pushes modules to it when `push` (the
    /// module store is that registry) instead of storing them in the cache directory.
    pub fn with_registry(mut self, registry: Arc<Registry>, push: bool) -> Self {
        self.registry = Some(registry);
        self.push = push;
        self
    }

    /// Replaces a `path` module of `job` with the `sha256` of the uploaded file, and a
    /// tag of an `oci` reference with the digest it names now (so that every retry runs
    /// the same bytes).
    pub fn resolve(&mut self, job: &mut Job, base: &Path, origin: &str) -> Result<(), Rejection> {
        if let ModuleRef::Oci(reference) = &job.module {
            let Some(registry) = &self.registry else {
                return Ok(());
            };
            let pinned = self.pinned.entry(reference.clone()).or_insert_with(|| {
                wait(registry.resolve_reference(reference))
                    .map(|r| r.pinned)
                    .map_err(|e| rejection(origin, reference, e))
            });
            job.module = ModuleRef::Oci(pinned.clone()?);
            return Ok(());
        }
        let ModuleRef::Path(rel) = &job.module else {
            return Ok(());
        };
        let path = base.join(rel);
        let (cache, inline_fallback) = (self.cache, self.inline_fallback);
        let registry = self.registry.as_ref().filter(|_| self.push);
        let got = self.seen.entry(path.clone()).or_insert_with(|| {
            let bytes = read_module(&path).map_err(|e| format!("{e:#}"))?;
            if let Some(registry) = registry {
                return wait(registry.push_module(&bytes))
                    .map(|d| ModuleRef::Sha256(d.to_hex()))
                    .map_err(|e| format!("could not push the module to {}: {e}", store_name(registry)));
            }
            match cache.put_module(&bytes) {
                Ok(digest) => Ok(ModuleRef::Sha256(digest.to_hex())),
                Err(e) if inline_fallback => {
                    tracing::warn!(module = %path.display(), error = %e, "could not store the module; running it from memory");
                    use base64::Engine as _;
                    Ok(ModuleRef::Base64(
                        base64::engine::general_purpose::STANDARD.encode(&bytes),
                    ))
                }
                Err(e) => Err(format!("could not store the module: {e}")),
            }
        });
        match got {
            Ok(module) => {
                job.module = module.clone();
                Ok(())
            }
            Err(why) => Err(Rejection::new(
                codes::MODULE_NOT_FOUND,
                format!("{origin}: module.path {}: {why}", rel.display()),
            )),
        }
    }
}

fn store_name(registry: &Registry) -> String {
    registry
        .store()
        .map_or_else(|| "the registry".to_owned(), |s| s.to_string())
}

/// Why a reference could not be pinned, as the job's rejection.
fn rejection(origin: &str, reference: &str, e: RemoteError) -> Rejection {
    let code = match &e {
        RemoteError::NotFound(_) => codes::MODULE_NOT_FOUND,
        RemoteError::DigestMismatch(_) => codes::MODULE_DIGEST_MISMATCH,
        RemoteError::NotWasm(_) => codes::INVALID_MODULE,
        RemoteError::Unavailable(_) => codes::INTERNAL,
    };
    Rejection::new(code, format!("{origin}: module.oci {reference}: {e}"))
}

/// Runs `f` to its end from synchronous code, on the runtime of the caller if there is
/// one.
fn wait<T>(f: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for registry requests")
            .block_on(f),
    }
}

/// Reads a module file (`.wat` text is assembled) and stores it: pushed to `registry`
/// when given (the module store is a registry), else in the cache directory. Returns its
/// sha256.
pub fn upload(cache: &Cache, registry: Option<&Registry>, path: &Path) -> anyhow::Result<String> {
    let bytes = read_module(path)?;
    let digest = match registry {
        Some(r) => wait(r.push_module(&bytes))
            .with_context(|| format!("could not push {} to {}", path.display(), store_name(r)))?,
        None => cache.put_module(&bytes)?,
    };
    Ok(digest.to_hex())
}

/// A module's bytes; `.wat` files are assembled to binary.
pub fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read module {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .with_context(|| format!("failed to assemble {}", path.display()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_array_and_bad_line() {
        let mut out = Vec::new();
        let text = b"{\"module\":{\"sha256\":\"00\"}}\n\n{not json\n";
        parse(text, "a.jsonl", Path::new("."), Framing::Lines, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].origin, "a.jsonl:1");
        let bad = out[1].job.as_ref().unwrap_err();
        assert!(
            bad.message.starts_with("a.jsonl:3: invalid job"),
            "{}",
            bad.message
        );

        let mut out = Vec::new();
        parse(
            br#"[{"module":{"base64":""}},{"module":{"base64":""}}]"#,
            "b.json",
            Path::new("."),
            Framing::Document,
            &mut out,
        );
        assert_eq!(
            out.iter().map(|e| e.origin.as_str()).collect::<Vec<_>>(),
            ["b.json[0]", "b.json[1]"]
        );
        assert!(out.iter().all(|e| e.job.is_ok()));
    }

    #[test]
    fn guess_reads_one_pretty_object() {
        let mut out = Vec::new();
        parse(
            b"{\n  \"module\": {\"base64\": \"\"}\n}\n",
            "-",
            Path::new("."),
            Framing::Guess,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].job.is_ok());
    }
}
