//! How a job's module is run ([`JobKind`]), and the kind a job without one runs as,
//! detected from what its module exports ([`Exports`]).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// How a job's module is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A WASI preview 1 command: a core module whose `_start` is called.
    Command,
    /// A WASI preview 2 command component: its `wasi:cli/run` export is called.
    Component,
    /// A function export of a core module, called with the job's input bytes under the
    /// plugin ABI (docs/guest-abi.md); its output bytes are the result's `output`.
    Function,
    /// A component of the `wasmq:job/handler` world (wit/job.wit): `handle` is called with
    /// the input bytes and the job's context.
    Handler,
}

/// A kind is one of four strings. The derived impl also took `{"function": null}`, and said
/// only "expected value" of a number or an array.
impl<'de> Deserialize<'de> for JobKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KINDS: [JobKind; 4] = JobKind::ALL;
        const NAMES: &[&str] = &["command", "component", "function", "handler"];

        struct Kind;

        impl Visitor<'_> for Kind {
            type Value = JobKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of command, component, function, handler")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<JobKind, E> {
                KINDS
                    .into_iter()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| E::unknown_variant(s, NAMES))
            }
        }

        d.deserialize_str(Kind)
    }
}

/// What a module offers, as far as choosing its kind goes: read from its bytes (core
/// module or component) and its exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    /// A component (Component Model) rather than a core module.
    pub component: bool,
    /// A core module exporting `_start`, or a component exporting `wasi:cli/run`.
    pub command: bool,
    /// A core module exporting `alloc` and the job's function (`export`, or `transform`),
    /// or a component exporting `handle` of the `wasmq:job/handler` world.
    pub function: bool,
}

impl JobKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [JobKind; 4] = [
        JobKind::Command,
        JobKind::Component,
        JobKind::Function,
        JobKind::Handler,
    ];

    /// The kind a job without `kind` runs as, given what its module exports; `None` when
    /// it offers no entry point. A job that gives `input` or `export` (`wants_function`,
    /// fields no command takes) runs as a function (core module) or handler (component);
    /// otherwise a module's command comes before its function.
    pub fn detect(exports: Exports, wants_function: bool) -> Option<JobKind> {
        let function = wants_function || (exports.function && !exports.command);
        match (exports.component, function, exports.command) {
            (false, true, _) => Some(JobKind::Function),
            (false, false, true) => Some(JobKind::Command),
            (true, true, _) => Some(JobKind::Handler),
            (true, false, true) => Some(JobKind::Component),
            (_, false, false) => None,
        }
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Command => "command",
            JobKind::Component => "component",
            JobKind::Function => "function",
            JobKind::Handler => "handler",
        }
    }

    /// True for the kinds whose module is a component.
    pub fn is_component(self) -> bool {
        matches!(self, JobKind::Component | JobKind::Handler)
    }

    /// True for the kinds that take `input` and return `output`.
    pub fn takes_input(self) -> bool {
        matches!(self, JobKind::Function | JobKind::Handler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_detected_from_what_the_module_exports() {
        let core = |command, function| Exports {
            component: false,
            command,
            function,
        };
        let comp = |command, function| Exports {
            component: true,
            command,
            function,
        };
        use JobKind::*;
        assert_eq!(JobKind::detect(core(true, false), false), Some(Command));
        assert_eq!(JobKind::detect(core(false, true), false), Some(Function));
        assert_eq!(JobKind::detect(core(true, true), false), Some(Command));
        assert_eq!(JobKind::detect(core(true, true), true), Some(Function));
        // The job's input says function; the run then explains what the module lacks.
        assert_eq!(JobKind::detect(core(true, false), true), Some(Function));
        assert_eq!(JobKind::detect(core(false, false), false), None);
        assert_eq!(JobKind::detect(comp(true, false), false), Some(Component));
        assert_eq!(JobKind::detect(comp(false, true), false), Some(Handler));
        assert_eq!(JobKind::detect(comp(true, true), true), Some(Handler));
        assert_eq!(JobKind::detect(comp(false, false), false), None);
        assert_eq!(JobKind::detect(comp(true, false), true), Some(Handler));
    }
}
