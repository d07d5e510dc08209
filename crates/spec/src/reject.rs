//! Why a job was refused or failed, for a machine (`code`) and for a person (`message`).

use std::fmt;

pub use crate::code::codes;

/// The reason a job is not run: a stable machine `code` plus a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// One of [`codes`] (the wire name of a [`Code`](crate::Code)).
    pub code: &'static str,
    /// What is wrong, on which input, and what to do; lowercase, no final period.
    pub message: String,
}

impl Rejection {
    /// A rejection with the given code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Rejection {}
