//! How registries are reached: plain HTTP for the listed ones, and whose credentials.

use std::collections::BTreeMap;

use anyhow::bail;
use wasmq_registry::{Credentials, RegistryConfig};

use crate::settings::args::CommonArgs;
use crate::settings::file::RegistryAuthConfig;
use crate::settings::sources::{Layers, Source, Value};

/// Registries: plain HTTP for the listed ones (flag or env, else the file), credentials
/// from the file by registry, else from `WASMQ_REGISTRY_USERNAME` and
/// `WASMQ_REGISTRY_PASSWORD` (or `WASMQ_REGISTRY_TOKEN`) for every registry. Gives the
/// insecure registries (`insecure_registries`) and the whole configuration
/// (`registries`), each with its source.
pub fn config(
    layers: &Layers,
    args: &CommonArgs,
) -> anyhow::Result<(Value<Vec<String>>, Value<RegistryConfig>)> {
    let file = &layers.file;
    let insecure = layers.merge(
        "insecure_registries",
        Some(args.insecure_registries.clone()).filter(|hosts| !hosts.is_empty()),
        file.insecure_registries.clone(),
        Vec::new,
    );
    for host in &insecure.value {
        let probe = format!("{host}/probe:probe");
        if host.contains('/') || wasmq_spec::parse_oci_reference(&probe).is_err() {
            bail!("insecure registry {host:?} is not HOST[:PORT]");
        }
    }
    let mut by_host = BTreeMap::new();
    for (host, auth) in &file.registries {
        by_host.insert(
            host.clone(),
            credentials(&format!("registries.{host:?}"), auth)?,
        );
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let default_credentials = credentials(
        "WASMQ_REGISTRY_USERNAME/WASMQ_REGISTRY_PASSWORD/WASMQ_REGISTRY_TOKEN",
        &RegistryAuthConfig {
            username: env("WASMQ_REGISTRY_USERNAME"),
            password: env("WASMQ_REGISTRY_PASSWORD"),
            token: env("WASMQ_REGISTRY_TOKEN"),
        },
    )?;
    let source = if !file.registries.is_empty() {
        Source::File
    } else if default_credentials != Credentials::Anonymous {
        Source::Env
    } else {
        Source::Default
    };
    let config = RegistryConfig {
        insecure: insecure.value.clone(),
        credentials: by_host,
        default_credentials,
        ..RegistryConfig::default()
    };
    Ok((
        insecure,
        Value {
            value: config,
            source,
        },
    ))
}

/// A username and password, or a token alone, or nothing (anonymous); named `key` in
/// the error.
fn credentials(key: &str, a: &RegistryAuthConfig) -> anyhow::Result<Credentials> {
    match (&a.username, &a.password, &a.token) {
        (None, None, None) => Ok(Credentials::Anonymous),
        (Some(u), Some(p), None) => Ok(Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        }),
        (None, None, Some(t)) => Ok(Credentials::Bearer(t.clone())),
        _ => bail!("{key}: give username and password together, or a token alone"),
    }
}

/// The credentials of each registry, secrets left out.
pub fn shown(c: &RegistryConfig) -> String {
    let mut parts: Vec<String> = c
        .credentials
        .iter()
        .map(|(h, cred)| format!("{h}: {cred:?}"))
        .collect();
    parts.push(format!("others: {:?}", c.default_credentials));
    parts.join(", ")
}
