//! Results isolation on a real RabbitMQ: two tenant users created by the shipped script
//! (`deploy/rabbitmq/add-tenant.sh`), holding exactly its permissions. Tenant A can
//! submit, wait for its results and use `reply_to`; tenant B can neither read A's results
//! nor learn their number, nor send A a job or a result A would take for its own.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::json;
use wasmq_broker::amqp::{Retention, Topology};
use wasmq_spec::{JobResult, Status};

use crate::fleet::{Fleet, amqp_url};
use crate::support::{fixture, job};
use crate::tenants::write_config;

/// A tenant's broker user, made by `deploy/rabbitmq/add-tenant.sh`; deleted on drop.
pub(crate) struct Tenant {
    pub(crate) name: String,
    password: String,
}

impl Tenant {
    pub(crate) fn create(f: &Fleet, tag: &str) -> Tenant {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let t = Tenant {
            name: format!("wasmq-iso-{tag}-{}-{nanos}", std::process::id()),
            password: format!("pw-{nanos}-{tag}"),
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rabbitmq/add-tenant.sh");
        let out = Command::new(script)
            .args([&t.name, &t.password])
            .env("WASMQ_QUEUE_PREFIX", &f.prefix)
            .output()
            .expect("running deploy/rabbitmq/add-tenant.sh");
        assert!(
            out.status.success(),
            "add-tenant.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    pub(crate) fn url(&self) -> String {
        let base = amqp_url();
        let rest = base.rsplit_once('@').map(|(_, r)| r.to_owned()).unwrap();
        format!("amqp://{}:{}@{rest}", self.name, self.password)
    }

    /// The name of this tenant's result queue for `batch`.
    fn batch_queue(&self, f: &Fleet, batch: &str) -> String {
        topology(f).private_batch_queue(&self.name, batch, Some(self.password.as_bytes()))
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

fn topology(f: &Fleet) -> Topology {
    Topology {
        prefix: f.prefix.clone(),
        delivery_limit: 5,
        results_retention: Retention::DEFAULT,
        batch_retention: wasmq_broker::amqp::BatchRetention::DEFAULT,
    }
}

fn wasmq_as(f: &Fleet, t: &Tenant, args: &[&str]) -> std::process::Output {
    f.wasmq()
        .args(args)
        .args(["--amqp-url", &t.url()])
        .output()
        .unwrap()
}

fn block_on<T>(fut: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

/// What the broker says to one operation on a fresh channel of `conn`.
async fn attempt<F, Fut>(conn: &Connection, op: F) -> Result<(), String>
where
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = Result<(), lapin::Error>>,
{
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    op(ch).await.map_err(|e| e.to_string())
}

fn refused(what: &str, outcome: Result<(), String>, reason: &str) {
    match outcome {
        Ok(()) => panic!("the broker allowed B to {what}"),
        Err(e) => assert!(
            e.contains(reason),
            "{what}: refused, but not for {reason}: {e}"
        ),
    }
}

fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: Vec<u8>,
    props: BasicProperties,
) -> impl Future<Output = Result<(), lapin::Error>> + use<> {
    let (ch, exchange, key) = (ch.clone(), exchange.to_owned(), key.to_owned());
    async move {
        ch.confirm_select(Default::default()).await?;
        ch.basic_publish(
            exchange.as_str().into(),
            key.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await?
        .await?;
        // A refusal closes the channel; a round trip after the publish makes it show.
        ch.basic_qos(1, Default::default()).await
    }
}

#[test]
fn a_tenant_reads_its_own_results_and_no_other_tenant_can() {
    let mut f = Fleet::new("isolation");
    let (a, b) = (Tenant::create(&f, "a"), Tenant::create(&f, "b"));
    let cfg = write_config(
        &f,
        "",
        &format!("[tenants.{}]\n\n[tenants.{}]\n", a.name, b.name),
    );
    f.start_worker(2, &["--config", &cfg]);
    let noop = fixture("noop.wat");
    let noop_sha = wasmq_cache::Digest::of(&wat::parse_file(&noop).unwrap()).to_hex();
    let t = topology(&f);

    // A, with its permissions alone: submit, then results --wait.
    let file = f
        .dir
        .jobs_file("a.jsonl", &[job("a1", &noop), job("a2", &noop)]);
    let out = f
        .wasmq()
        .args(["submit", "--batch", "mine", "--amqp-url", &a.url()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wasmq_as(
        &f,
        &a,
        &["results", "--batch", "mine", "--wait", "--timeout", "60"],
    );
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 2, "{}", r.stderr);
    for x in &r.results {
        assert_eq!(x.status, Status::Succeeded, "{}", x.message);
        assert_eq!(x.tenant.as_deref(), Some(a.name.as_str()));
    }

    // A batch of A's left unread, whose name B knows.
    let file = f.dir.jobs_file(
        "s.jsonl",
        &[job("s1", &noop), job("s2", &noop), job("s3", &noop)],
    );
    let out = f
        .wasmq()
        .args(["submit", "--batch", "secret", "--amqp-url", &a.url()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = a.batch_queue(&f, "secret");
    let secret_suffix = secret
        .strip_prefix(&format!("{}.", f.prefix))
        .unwrap()
        .to_owned();
    crate::fleet::wait_until(
        "A's three results and manifest",
        Duration::from_secs(30),
        || f.ready(&secret_suffix) == 4,
    );
    // B's own batch, for the forged reply below.
    let file = f.dir.jobs_file("b.jsonl", &[job("b1", &noop)]);
    let out = f
        .wasmq()
        .args(["submit", "--batch", "bforged", "--amqp-url", &b.url()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let a_word = Topology::user_word(&a.name);
    let b_word = Topology::user_word(&b.name);
    block_on(async {
        let conn = Connection::connect(&b.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let consume = |queue: String| {
            move |ch: Channel| async move {
                ch.basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map(drop)
            }
        };
        // Read A's results: A's batch queue (even by its full name), the shared queue.
        refused(
            "consume A's batch queue",
            attempt(&conn, consume(secret.clone())).await,
            "ACCESS_REFUSED",
        );
        refused(
            "consume the shared results queue",
            attempt(&conn, consume(t.results())).await,
            "ACCESS_REFUSED",
        );
        refused(
            "consume the jobs queue",
            attempt(&conn, consume(t.jobs_queue())).await,
            "ACCESS_REFUSED",
        );

        // Bind a queue of its own to A's results.
        let own = format!("{}.batch.{b_word}.spy", f.prefix);
        attempt(&conn, |ch: Channel| {
            let own = own.clone();
            async move {
                ch.queue_declare(
                    own.as_str().into(),
                    QueueDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map(drop)
            }
        })
        .await
        .expect("B may declare a queue in its own namespace");
        let bind = |exchange: String, key: String| {
            let own = own.clone();
            move |ch: Channel| async move {
                ch.queue_bind(
                    own.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
        };
        for key in [
            format!("{a_word}.secret.#"),
            "#".to_owned(),
            "*.secret.#".to_owned(),
        ] {
            refused(
                &format!("bind to the private results with {key}"),
                attempt(&conn, bind(t.private_exchange(), key.clone())).await,
                "ACCESS_REFUSED",
            );
        }
        refused(
            "bind to the shared results exchange",
            attempt(&conn, bind(t.results(), "#".into())).await,
            "ACCESS_REFUSED",
        );
        attempt(&conn, bind(t.private_exchange(), format!("{b_word}.spy.#")))
            .await
            .expect("B may bind its own queue to its own results");

        // Learn the size of A's queue: the name B can know does not exist (the real
        // name carries a tag keyed by A's password).
        let passive = |queue: String| {
            move |ch: Channel| async move {
                ch.queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(drop)
            }
        };
        let guessed = t.private_batch_queue(&a.name, "secret", None);
        refused(
            "passive-declare A's batch queue",
            attempt(&conn, passive(guessed)).await,
            "NOT_FOUND",
        );
        let wrong_key = t.private_batch_queue(&a.name, "secret", Some(b.password.as_bytes()));
        refused(
            "passive-declare A's batch queue with its own key",
            attempt(&conn, passive(wrong_key)).await,
            "NOT_FOUND",
        );

        // Publish a job as A.
        let body =
            json!({"id": "as-a", "batch": "secret", "module": {"sha256": noop_sha}}).to_string();
        let as_a = BasicProperties::default().with_user_id(a.name.as_str().into());
        refused(
            "publish a job claiming to be A",
            attempt(&conn, |ch: Channel| {
                publish(
                    &ch,
                    &t.submit_exchange(),
                    &b_word,
                    body.clone().into_bytes(),
                    as_a.clone(),
                )
            })
            .await,
            "PRECONDITION_FAILED",
        );
        refused(
            "publish a job under A's routing key",
            attempt(&conn, |ch: Channel| {
                publish(
                    &ch,
                    &t.submit_exchange(),
                    &a_word,
                    body.clone().into_bytes(),
                    BasicProperties::default(),
                )
            })
            .await,
            "ACCESS_REFUSED",
        );

        // Forge a result A would read.
        let mut forged = JobResult::new("s4", Some("secret".into()));
        forged.status = Status::Succeeded;
        let forged = serde_json::to_vec(&forged).unwrap();
        for (exchange, key) in [
            (t.private_exchange(), format!("{a_word}.secret.succeeded")),
            (
                t.private_exchange(),
                format!("{b_word}.secret.succeeded.shared"),
            ),
            (t.results(), "secret.succeeded".to_owned()),
            (String::new(), secret.clone()),
            (String::new(), t.results()),
        ] {
            refused(
                &format!("publish a result to {exchange:?} with {key}"),
                attempt(&conn, |ch: Channel| {
                    publish(
                        &ch,
                        &exchange,
                        &key,
                        forged.clone(),
                        BasicProperties::default(),
                    )
                })
                .await,
                "ACCESS_REFUSED",
            );
        }
        // A job of B's own whose reply_to is A's queue: the worker sends its result to
        // B's results, not there.
        let forged_job =
            json!({"id": "forged", "batch": "bforged", "module": {"sha256": noop_sha}}).to_string();
        let props = BasicProperties::default()
            .with_user_id(b.name.as_str().into())
            .with_reply_to(secret.as_str().into());
        attempt(&conn, |ch: Channel| {
            publish(
                &ch,
                &t.submit_exchange(),
                &b_word,
                forged_job.clone().into_bytes(),
                props.clone(),
            )
        })
        .await
        .expect("B may publish its own job");
        let _ = conn.close(200, "done".into()).await;
    });

    let out = wasmq_as(
        &f,
        &b,
        &[
            "results",
            "--batch",
            "bforged",
            "--wait",
            "--expect",
            "2",
            "--timeout",
            "60",
        ],
    );
    let r = crate::support::parse(out);
    assert_eq!(r.results.len(), 2, "{}", r.stderr);
    assert_eq!(r.by_id("forged").tenant.as_deref(), Some(b.name.as_str()));
    assert_eq!(
        f.ready(&secret_suffix),
        4,
        "nothing of B's reached A's queue"
    );

    // A reads exactly its own three.
    let out = wasmq_as(
        &f,
        &a,
        &["results", "--batch", "secret", "--wait", "--timeout", "60"],
    );
    let r = crate::support::parse(out);
    let mut ids: Vec<&str> = r.results.iter().map(|x| x.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["s1", "s2", "s3"], "{}", r.stderr);

    // And A's reply_to, with A's permissions alone.
    let reply = block_on(async {
        let conn = Connection::connect(&a.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut consumer = ch
            .basic_consume(
                q.name().as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let body = json!({"id": "via-reply", "module": {"sha256": noop_sha}}).to_string();
        let props = BasicProperties::default()
            .with_user_id(a.name.as_str().into())
            .with_reply_to(q.name().clone())
            .with_correlation_id("c1".into());
        publish(&ch, &t.submit_exchange(), &a_word, body.into_bytes(), props)
            .await
            .expect("A publishes its own job");
        let d = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .expect("a reply within 60 s")
            .unwrap()
            .unwrap();
        assert_eq!(
            d.properties.correlation_id().as_ref().map(|c| c.as_str()),
            Some("c1")
        );
        let r: JobResult = serde_json::from_slice(&d.data).unwrap();
        let _ = conn.close(200, "done".into()).await;
        r
    });
    assert_eq!(
        (reply.id.as_str(), reply.status),
        ("via-reply", Status::Succeeded)
    );
    assert_eq!(reply.tenant.as_deref(), Some(a.name.as_str()));

    // A tenant may broadcast a cancel of its own jobs, but not make every worker compile.
    let out = f
        .wasmq()
        .args([
            "prewarm",
            "--broadcast",
            "--timeout",
            "30",
            "--amqp-url",
            &b.url(),
        ])
        .arg(&noop)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not ready") && text.contains("prewarm is for the operator"),
        "{text}"
    );

    // B cancels its own batch with its permissions alone.
    let out = wasmq_as(&f, &b, &["cancel", "--batch", "bforged", "--wait", "0.5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
