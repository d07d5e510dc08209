//! One module per subcommand.

pub mod cache;
pub mod prewarm;
pub mod results;
pub mod run;
pub mod submit;
pub mod worker;
