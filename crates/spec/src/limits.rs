//! Resource limits: what a job asks for, what a worker allows, what a run gets.
//!
//! Every limit has a worker default (used when the job is silent) and a worker maximum.
//! A job asking above a maximum is rejected with a reason that names the limit and both
//! values; it is never clamped silently.

use serde::{Deserialize, Serialize};

use crate::reject::{Rejection, codes};

/// The limits a job asks for; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// Wall-clock budget for instantiate + run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Instruction budget; turns fuel metering on for this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Largest linear memory the guest may grow to, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Bytes of stdout kept in the result (the head is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_bytes: Option<u64>,
    /// Bytes of stderr kept in the result (the head is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_bytes: Option<u64>,
    /// Total bytes of collected files returned in the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Bytes the job's files in `/work` may take (input files included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Files and directories the job may have in `/work` (input files included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Core module instances the job may create (a component counts each core instance
    /// inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
    /// Tables the job's instances may have in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<u64>,
    /// Linear memories the job's instances may have in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memories: Option<u64>,
    /// Outbound HTTP requests the job's components may send (refused ones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_requests: Option<u64>,
    /// Bytes of HTTP response bodies the job may receive, over all its requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_bytes: Option<u64>,
    /// How long an outbound request may take to connect (TCP and TLS), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_connect_timeout_ms: Option<u64>,
    /// How long an outbound request may wait for its response's head once connected, in
    /// milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_first_byte_timeout_ms: Option<u64>,
}

/// The limits one run gets, after defaults and maximums are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget in milliseconds.
    pub timeout_ms: u64,
    /// Instruction budget; `None` runs without fuel metering.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Largest linear memory in bytes.
    pub memory_bytes: u64,
    /// Bytes of stdout kept.
    pub stdout_bytes: u64,
    /// Bytes of stderr kept.
    pub stderr_bytes: u64,
    /// Total bytes of collected files returned.
    pub output_bytes: u64,
    /// Bytes the job's files in `/work` may take.
    pub disk_bytes: u64,
    /// Files and directories the job may have in `/work`.
    pub files: u64,
    /// Core module instances, in total.
    pub instances: u64,
    /// Tables, in total.
    pub tables: u64,
    /// Linear memories, in total.
    pub memories: u64,
    /// Outbound HTTP requests, refused ones included.
    pub http_requests: u64,
    /// Bytes of HTTP response bodies, in total.
    pub http_response_bytes: u64,
    /// Connect timeout of one outbound request, in milliseconds.
    pub http_connect_timeout_ms: u64,
    /// First-byte timeout of one outbound request, in milliseconds.
    pub http_first_byte_timeout_ms: u64,
}

const MIB: u64 = 1024 * 1024;

impl Limits {
    /// The built-in defaults a worker applies when a job is silent.
    pub const DEFAULT: Limits = Limits {
        timeout_ms: 10_000,
        fuel: None,
        memory_bytes: 256 * MIB,
        stdout_bytes: MIB,
        stderr_bytes: MIB,
        output_bytes: 16 * MIB,
        disk_bytes: 64 * MIB,
        files: 10_000,
        instances: 32,
        tables: 16,
        memories: 4,
        http_requests: 16,
        http_response_bytes: 16 * MIB,
        http_connect_timeout_ms: 5_000,
        http_first_byte_timeout_ms: 10_000,
    };

    /// The built-in maximums; `fuel: None` means any fuel budget is accepted.
    pub const MAXIMUM: Limits = Limits {
        timeout_ms: 300_000,
        fuel: None,
        memory_bytes: 4096 * MIB,
        stdout_bytes: 64 * MIB,
        stderr_bytes: 64 * MIB,
        output_bytes: 256 * MIB,
        disk_bytes: 4096 * MIB,
        files: 1_000_000,
        instances: 128,
        tables: 64,
        memories: 8,
        http_requests: 1_000,
        http_response_bytes: 256 * MIB,
        http_connect_timeout_ms: 30_000,
        http_first_byte_timeout_ms: 300_000,
    };
}

impl Limits {
    /// Every limit but fuel, by name, in a stable order.
    fn named(&self) -> [(&'static str, u64); 14] {
        [
            ("timeout_ms", self.timeout_ms),
            ("memory_bytes", self.memory_bytes),
            ("stdout_bytes", self.stdout_bytes),
            ("stderr_bytes", self.stderr_bytes),
            ("output_bytes", self.output_bytes),
            ("disk_bytes", self.disk_bytes),
            ("files", self.files),
            ("instances", self.instances),
            ("tables", self.tables),
            ("memories", self.memories),
            ("http_requests", self.http_requests),
            ("http_response_bytes", self.http_response_bytes),
            ("http_connect_timeout_ms", self.http_connect_timeout_ms),
            (
                "http_first_byte_timeout_ms",
                self.http_first_byte_timeout_ms,
            ),
        ]
    }

    /// The first limit of `self` above the same limit of `max`, as (name, value, maximum);
    /// `None` when every limit is within. Fuel `None` means unbounded, so it is above any
    /// bounded maximum.
    pub fn first_above(&self, max: &Limits) -> Option<(&'static str, String, String)> {
        for ((name, v), (_, m)) in self.named().into_iter().zip(max.named()) {
            if v > m {
                return Some((name, v.to_string(), m.to_string()));
            }
        }
        match (self.fuel, max.fuel) {
            (Some(v), Some(m)) if v > m => Some(("fuel", v.to_string(), m.to_string())),
            (None, Some(m)) => Some(("fuel", "unbounded".into(), m.to_string())),
            _ => None,
        }
    }
}

/// Why a [`LimitPolicy`] is not usable ([`LimitPolicy::check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitPolicyError {
    /// A default above its maximum.
    #[error("default limit {name} = {default} is above the maximum {maximum}")]
    AboveMaximum {
        /// The limit, as in a job's `limits`.
        name: &'static str,
        /// Its default.
        default: u64,
        /// Its maximum.
        maximum: u64,
    },
    /// A default of 0 where a run needs at least 1.
    #[error("default limit {name} must be at least 1")]
    Zero {
        /// The limit, as in a job's `limits`.
        name: &'static str,
    },
}

/// The error's text, for settings checks that report a sentence.
impl From<LimitPolicyError> for String {
    fn from(e: LimitPolicyError) -> String {
        e.to_string()
    }
}

/// A worker's defaults and maximums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Applied to every limit a job does not set.
    pub default: Limits,
    /// The most a job may ask for.
    pub maximum: Limits,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        LimitPolicy {
            default: Limits::DEFAULT,
            maximum: Limits::MAXIMUM,
        }
    }
}

impl LimitPolicy {
    /// Checks that every default is within its maximum; run once when a worker starts.
    pub fn check(&self) -> Result<(), LimitPolicyError> {
        let d = &self.default;
        let m = &self.maximum;
        let pairs = d
            .named()
            .into_iter()
            .zip(m.named())
            .map(|((name, d), (_, m))| (name, d, m));
        for (name, default, maximum) in pairs {
            if default > maximum {
                return Err(LimitPolicyError::AboveMaximum {
                    name,
                    default,
                    maximum,
                });
            }
        }
        if let (Some(default), Some(maximum)) = (d.fuel, m.fuel)
            && default > maximum
        {
            return Err(LimitPolicyError::AboveMaximum {
                name: "fuel",
                default,
                maximum,
            });
        }
        if d.timeout_ms == 0 {
            return Err(LimitPolicyError::Zero { name: "timeout_ms" });
        }
        if d.instances == 0 {
            return Err(LimitPolicyError::Zero { name: "instances" });
        }
        Ok(())
    }

    /// This policy with a tighter maximum (`max`, within this one's maximum): a default
    /// above `max` is lowered to it, since a job that asks for nothing must still be
    /// within its maximum.
    pub fn narrowed(&self, max: Limits) -> LimitPolicy {
        let d = &self.default;
        LimitPolicy {
            default: Limits {
                timeout_ms: d.timeout_ms.min(max.timeout_ms),
                fuel: match (d.fuel, max.fuel) {
                    (Some(d), Some(m)) => Some(d.min(m)),
                    (d, _) => d,
                },
                memory_bytes: d.memory_bytes.min(max.memory_bytes),
                stdout_bytes: d.stdout_bytes.min(max.stdout_bytes),
                stderr_bytes: d.stderr_bytes.min(max.stderr_bytes),
                output_bytes: d.output_bytes.min(max.output_bytes),
                disk_bytes: d.disk_bytes.min(max.disk_bytes),
                files: d.files.min(max.files),
                instances: d.instances.min(max.instances),
                tables: d.tables.min(max.tables),
                memories: d.memories.min(max.memories),
                http_requests: d.http_requests.min(max.http_requests),
                http_response_bytes: d.http_response_bytes.min(max.http_response_bytes),
                http_connect_timeout_ms: d.http_connect_timeout_ms.min(max.http_connect_timeout_ms),
                http_first_byte_timeout_ms: d
                    .http_first_byte_timeout_ms
                    .min(max.http_first_byte_timeout_ms),
            },
            maximum: max,
        }
    }

    /// The limits for a job that asks for `req`, or why it may not have them.
    pub fn resolve(&self, req: &LimitsRequest) -> Result<Limits, Rejection> {
        self.resolve_with(req, "this worker's")
    }

    /// As [`LimitPolicy::resolve`]; a rejection names the maximum as `whose` maximum
    /// (`this worker's`, `tenant "alice"'s`).
    pub fn resolve_with(&self, req: &LimitsRequest, whose: &str) -> Result<Limits, Rejection> {
        let pick = |name: &str, asked: Option<u64>, default: u64, max: u64| match asked {
            None => Ok(default),
            Some(v) if v > max => Err(Rejection::new(
                codes::LIMIT_ABOVE_MAXIMUM,
                format!(
                    "limits.{name} = {v} is above {whose} maximum of {max}; ask for at most {max}"
                ),
            )),
            Some(v) => Ok(v),
        };
        let (d, m) = (&self.default, &self.maximum);
        let timeout_ms = pick("timeout_ms", req.timeout_ms, d.timeout_ms, m.timeout_ms)?;
        if timeout_ms == 0 {
            return Err(Rejection::new(
                codes::INVALID_FIELD,
                "limits.timeout_ms must be at least 1",
            ));
        }
        let instances = pick("instances", req.instances, d.instances, m.instances)?;
        if instances == 0 {
            return Err(Rejection::new(
                codes::INVALID_FIELD,
                "limits.instances must be at least 1 (the job's module is an instance itself)",
            ));
        }
        let fuel = match (req.fuel, m.fuel) {
            (None, _) => d.fuel,
            (Some(v), Some(max)) => Some(pick("fuel", Some(v), 0, max)?),
            (Some(v), None) => Some(v),
        };
        Ok(Limits {
            timeout_ms,
            fuel,
            memory_bytes: pick(
                "memory_bytes",
                req.memory_bytes,
                d.memory_bytes,
                m.memory_bytes,
            )?,
            stdout_bytes: pick(
                "stdout_bytes",
                req.stdout_bytes,
                d.stdout_bytes,
                m.stdout_bytes,
            )?,
            stderr_bytes: pick(
                "stderr_bytes",
                req.stderr_bytes,
                d.stderr_bytes,
                m.stderr_bytes,
            )?,
            output_bytes: pick(
                "output_bytes",
                req.output_bytes,
                d.output_bytes,
                m.output_bytes,
            )?,
            disk_bytes: pick("disk_bytes", req.disk_bytes, d.disk_bytes, m.disk_bytes)?,
            files: pick("files", req.files, d.files, m.files)?,
            instances,
            tables: pick("tables", req.tables, d.tables, m.tables)?,
            memories: pick("memories", req.memories, d.memories, m.memories)?,
            http_requests: pick(
                "http_requests",
                req.http_requests,
                d.http_requests,
                m.http_requests,
            )?,
            http_response_bytes: pick(
                "http_response_bytes",
                req.http_response_bytes,
                d.http_response_bytes,
                m.http_response_bytes,
            )?,
            http_connect_timeout_ms: pick(
                "http_connect_timeout_ms",
                req.http_connect_timeout_ms,
                d.http_connect_timeout_ms,
                m.http_connect_timeout_ms,
            )?,
            http_first_byte_timeout_ms: pick(
                "http_first_byte_timeout_ms",
                req.http_first_byte_timeout_ms,
                d.http_first_byte_timeout_ms,
                m.http_first_byte_timeout_ms,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_job_gets_defaults() {
        let p = LimitPolicy::default();
        assert_eq!(
            p.resolve(&LimitsRequest::default()).unwrap(),
            Limits::DEFAULT
        );
    }

    #[test]
    fn above_maximum_is_rejected_not_clamped() {
        let p = LimitPolicy::default();
        let req = LimitsRequest {
            memory_bytes: Some(Limits::MAXIMUM.memory_bytes + 1),
            ..Default::default()
        };
        let err = p.resolve(&req).unwrap_err();
        assert_eq!(err.code, codes::LIMIT_ABOVE_MAXIMUM);
        assert!(
            err.message.contains("limits.memory_bytes"),
            "{}",
            err.message
        );
    }

    #[test]
    fn fuel_maximum_applies_when_set() {
        let mut p = LimitPolicy::default();
        p.maximum.fuel = Some(1000);
        let ok = LimitsRequest {
            fuel: Some(1000),
            ..Default::default()
        };
        assert_eq!(p.resolve(&ok).unwrap().fuel, Some(1000));
        let over = LimitsRequest {
            fuel: Some(1001),
            ..Default::default()
        };
        assert_eq!(
            p.resolve(&over).unwrap_err().code,
            codes::LIMIT_ABOVE_MAXIMUM
        );
    }

    #[test]
    fn a_narrowed_policy_names_its_owner_and_lowers_defaults() {
        let mut max = Limits::MAXIMUM;
        max.timeout_ms = 500;
        max.fuel = Some(10);
        let p = LimitPolicy::default().narrowed(max);
        let silent = p.resolve(&LimitsRequest::default()).unwrap();
        assert_eq!((silent.timeout_ms, silent.fuel), (500, None));
        let req = LimitsRequest {
            timeout_ms: Some(501),
            ..Default::default()
        };
        let err = p.resolve_with(&req, "tenant \"bob\"'s").unwrap_err();
        assert_eq!(err.code, codes::LIMIT_ABOVE_MAXIMUM);
        assert_eq!(
            err.message,
            "limits.timeout_ms = 501 is above tenant \"bob\"'s maximum of 500; ask for at most 500"
        );
        assert_eq!(max.first_above(&Limits::MAXIMUM), None);
        assert_eq!(
            Limits::MAXIMUM.first_above(&max),
            Some(("timeout_ms", "300000".into(), "500".into()))
        );
        let mut no_fuel_cap = max;
        no_fuel_cap.fuel = None;
        assert_eq!(
            no_fuel_cap.first_above(&max).map(|a| a.0),
            Some("fuel"),
            "unbounded fuel is above a bounded maximum"
        );
    }

    #[test]
    fn zero_timeout_is_refused() {
        let req = LimitsRequest {
            timeout_ms: Some(0),
            ..Default::default()
        };
        assert!(LimitPolicy::default().resolve(&req).is_err());
    }
}
