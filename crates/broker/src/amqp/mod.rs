//! RabbitMQ over AMQP 0-9-1 (lapin): topology, the worker's transport, and the client
//! side used by `submit`, `results` and `prewarm --broadcast`.
//!
//! Connections are kept by a [`Supervisor`](crate::supervisor::Supervisor) (see
//! [`crate::supervisor`]) rather than by lapin's automatic recovery: when the connection
//! or a channel fails, the session is dropped and rebuilt with backoff (connect, declare
//! the topology, set up channels), and the jobs consumer is recreated on the new session.
//!
//! - `topology`: [`Topology`], the names and arguments of every exchange and queue, and
//!   their declaration; [`Retention`] of the shared results queue.
//! - `url`: [`connect`], and what a broker URL tells ([`redact`], [`url_user`],
//!   [`url_password`]).
//! - `publish`: [`publish_confirmed`] and the [`json_properties`] of every message.
//! - `session`: the worker's session, [`WorkerChannels`] and their [`WorkerSetup`].
//! - `control`: the control exchange and its log; [`AmqpTransport::serve_control`].
//! - `transport`: [`AmqpTransport`] and [`AmqpDelivery`], the worker's transport.
//! - `sweep`: deleting the results streams of batches past their retention
//!   ([`AmqpTransport::sweep_batches`]).
//! - `headers`: reading header values.
//! - `stream`: where a stream's consumer starts ([`Offset`]), its credit, readers' markers, and
//!   reading a stream up to a marker of one's own.

mod control;
mod headers;
mod publish;
mod session;
mod stream;
mod sweep;
mod topology;
mod transport;
mod url;

pub(crate) use control::subscribe_private;
pub use control::{CONTROL_LOG_REPLAY, ControlMessage};
pub(crate) use headers::{as_u64, header_str};
pub use publish::{json_properties, publish_confirmed};
pub use session::{WorkerChannels, WorkerSetup};
pub(crate) use stream::{Credit, consume_stream, from_stream, new_marker, read_to_own_marker};
pub use stream::{Offset, marker_of, offset_args};
pub(crate) use sweep::STREAM_HEADER;
pub use sweep::manifest_names_stream;
pub use topology::{BatchRetention, Retention, Topology};
pub use transport::{AmqpConfig, AmqpDelivery, AmqpTransport, reply_allowed};
pub use url::{connect, redact, url_password, url_user};
