//! One module per subcommand.

pub mod cache;
pub mod prewarm;
pub mod run;
