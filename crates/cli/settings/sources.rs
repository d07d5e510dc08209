//! Where a setting's value comes from: a flag or its `WASMQ_*` environment variable, then
//! the config file, then the default. [`Layers`] holds the layers of one command line;
//! merging them gives a [`Value`] that keeps its [`Source`], shown by `wasmq config` as an
//! [`Entry`].

use std::collections::BTreeSet;

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::file::FileConfig;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
            Source::Flag => "flag",
        }
    }

    /// The source of a setting only the config file sets.
    pub fn file_or_default(in_file: bool) -> Source {
        if in_file {
            Source::File
        } else {
            Source::Default
        }
    }
}

/// One resolved setting, as `wasmq config` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The config-file key.
    pub key: String,
    /// The value, secrets redacted.
    pub value: String,
    pub source: Source,
}

/// A setting's value and the layer it came from.
#[derive(Debug, Clone)]
pub struct Value<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Value<T> {
    /// The value made from this one, from the same layer.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Value<U> {
        Value {
            value: f(self.value),
            source: self.source,
        }
    }

    /// The value made (or refused) from this one, from the same layer.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Value<U>, E> {
        Ok(Value {
            value: f(self.value)?,
            source: self.source,
        })
    }
}

/// The layers under a command's settings: its command line, as clap parsed it from flags
/// and environment variables, and the config file.
#[derive(Debug, Default)]
pub struct Layers {
    /// The config file (empty when none is named).
    pub(super) file: FileConfig,
    /// The arguments (clap ids) whose value clap took from their environment variable.
    from_env: BTreeSet<String>,
}

impl Layers {
    /// The layers of a command line: `matches`, the command's own (those its arguments
    /// were parsed from), and `file`.
    pub fn new(matches: &ArgMatches, file: FileConfig) -> Layers {
        let from_env = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::EnvVariable))
            .map(|id| id.as_str().to_owned())
            .collect();
        Layers { file, from_env }
    }

    /// Where the argument `id` (a clap id: the field's name), which is set, came from.
    pub fn arg_source(&self, id: &str) -> Source {
        if self.from_env.contains(id) {
            Source::Env
        } else {
            Source::Flag
        }
    }

    /// The source of a setting: its argument `id` when set (`in_args`), then the file,
    /// then the default.
    pub fn source(&self, id: &str, in_args: bool, in_file: bool) -> Source {
        if in_args {
            self.arg_source(id)
        } else {
            Source::file_or_default(in_file)
        }
    }

    /// The argument `id` (a flag or its env var), else the file's value, else `default`.
    pub fn merge<T>(
        &self,
        id: &str,
        arg: Option<T>,
        file: Option<T>,
        default: impl FnOnce() -> T,
    ) -> Value<T> {
        let source = self.source(id, arg.is_some(), file.is_some());
        let value = arg.or(file).unwrap_or_else(default);
        Value { value, source }
    }

    /// The argument `id` (a flag or its env var), else the file's value, else nothing.
    pub fn optional<T>(&self, id: &str, arg: Option<T>, file: Option<T>) -> Value<Option<T>> {
        self.merge(id, arg.map(Some), file.map(Some), || None)
    }
}

/// Resolved settings with their sources, in the order `wasmq config` shows them.
#[derive(Debug, Clone, Default)]
pub struct Entries(Vec<Entry>);

impl Entries {
    /// Adds the setting `key`, shown as `value`.
    pub fn push(&mut self, key: &str, value: impl Into<String>, source: Source) {
        self.0.push(Entry {
            key: key.to_owned(),
            value: value.into(),
            source,
        });
    }

    /// Adds `v` under `key`, shown by `show`, and gives its value.
    pub fn add<T>(&mut self, key: &str, v: Value<T>, show: impl FnOnce(&T) -> String) -> T {
        self.push(key, show(&v.value), v.source);
        v.value
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn a_flag_comes_before_the_file_and_the_file_before_the_default() {
        let matches = Command::new("t")
            .arg(Arg::new("a").long("a"))
            .try_get_matches_from(["t", "--a", "1"])
            .unwrap();
        let layers = Layers::new(&matches, FileConfig::default());
        let v = layers.merge("a", Some(1), Some(2), || 3);
        assert_eq!((v.value, v.source), (1, Source::Flag));
        let v = layers.merge("b", None, Some(2), || 3);
        assert_eq!((v.value, v.source), (2, Source::File));
        let v = layers.merge("b", None, None, || 3);
        assert_eq!((v.value, v.source), (3, Source::Default));
    }
}
