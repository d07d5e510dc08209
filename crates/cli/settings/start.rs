//! What every command does first: read the config file, resolve the common settings, set
//! up logging; and the async runtime of the commands that need one.

use anyhow::Context;
use clap::ArgMatches;

use super::args::{ClientArgs, CommonArgs, LogFormat};
use super::file::FileConfig;
use super::resolve::{BrokerSettings, CommonSettings};
use super::sources::Layers;

/// Reads the config file, resolves the common settings and sets up logging (at
/// `default_log` unless `WASMQ_LOG` or `RUST_LOG` say otherwise). `matches` are the
/// command's own, those its arguments were parsed from; the [`Layers`] are what the
/// command resolves the rest of its settings from.
pub fn start(
    args: &CommonArgs,
    matches: &ArgMatches,
    default_log: &str,
) -> anyhow::Result<(Layers, CommonSettings)> {
    let layers = Layers::new(matches, FileConfig::read(args.config.as_deref())?);
    let common = CommonSettings::resolve(&layers, args)?;
    init_logging(common.log_format, default_log);
    Ok((layers, common))
}

/// [`start`] for a command of [`ClientArgs`], with its broker settings resolved too.
pub fn start_client(
    args: &ClientArgs,
    matches: &ArgMatches,
    default_log: &str,
) -> anyhow::Result<(CommonSettings, BrokerSettings)> {
    let (layers, common) = start(&args.common, matches, default_log)?;
    let broker = BrokerSettings::resolve(&layers, &args.broker)?;
    Ok((common, broker))
}

/// Sets up logging to stderr; `WASMQ_LOG` (or `RUST_LOG`) filters, `default` otherwise.
///
/// By default lapin's own line for a channel the broker closed is left out: every
/// such close comes back to wasmq as an error it reports with its context (or
/// expects: `submit` asks whether its user's jobs queue exists, and a miss closes a
/// channel).
fn init_logging(format: LogFormat, default: &str) {
    let filter = std::env::var("WASMQ_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| format!("{default},lapin::channel=off"));
    let filter = tracing_subscriber::EnvFilter::new(filter);
    // Colours only for a terminal: logs piped to a file or a collector stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The multi-threaded async runtime the commands that talk to the network or run jobs
/// use.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wasmq")
        .build()
        .context("failed to start the async runtime")
}
