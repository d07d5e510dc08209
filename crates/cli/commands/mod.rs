//! One module per subcommand.

pub mod cache;
pub mod cancel;
pub mod config;
pub mod dashboard;
pub mod dead;
pub mod prewarm;
pub mod results;
pub mod run;
pub mod snapshot;
pub mod status;
pub mod submit;
pub mod worker;
