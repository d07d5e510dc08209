//! Per-job memory, table and disk limits, and what the job used.

use std::path::PathBuf;

use wasmtime::ResourceLimiter;

use crate::tree::{Usage, is_empty, usage};

/// Epoch ticks between two checks of a running job's `/work` (16 ms at the default tick).
const DISK_CHECK_EVERY: u32 = 16;

/// One job's disk quota: its `/work` directory and the limits on what it holds.
#[derive(Debug)]
pub(crate) struct DiskQuota {
    dir: PathBuf,
    max_bytes: u64,
    max_entries: u64,
    ticks: u32,
    /// Why the job was stopped for its files, if it was.
    pub(crate) exceeded: Option<String>,
    /// An open handle on `dir`, lent by its pool, given back after the job.
    pub(crate) handle: Option<rustix::fs::Dir>,
}

impl DiskQuota {
    pub(crate) fn new(
        dir: PathBuf,
        max_bytes: u64,
        max_entries: u64,
        handle: Option<rustix::fs::Dir>,
    ) -> DiskQuota {
        DiskQuota {
            dir,
            max_bytes,
            max_entries,
            ticks: 0,
            exceeded: None,
            handle,
        }
    }

    /// The measure at the end of the job: an empty directory (most jobs leave nothing)
    /// is seen through the open handle without a walk.
    pub(crate) fn check_final(&mut self) -> Option<Usage> {
        if let Some(h) = self.handle.as_mut()
            && is_empty(h).unwrap_or(false)
        {
            return Some(Usage::default());
        }
        self.check()
    }

    /// Called every epoch tick while the guest runs: every few ticks, measures `/work`;
    /// true when the job is over its quota and must stop.
    pub(crate) fn tick(&mut self) -> bool {
        self.ticks = self.ticks.wrapping_add(1);
        if !self.ticks.is_multiple_of(DISK_CHECK_EVERY) {
            return false;
        }
        self.check();
        self.exceeded.is_some()
    }

    /// Measures `/work` now, recording whether it is over the quota; `None` when it could
    /// not be measured, which is recorded as over the quota too: a tree too deep or too
    /// long to measure must not pass for a small one.
    pub(crate) fn check(&mut self) -> Option<Usage> {
        let usage = match usage(&self.dir, self.max_bytes, self.max_entries) {
            Ok(u) => u,
            Err(e) => {
                self.exceeded.get_or_insert_with(|| {
                    format!("the job's files in its directory cannot be measured ({e}), which its disk limit does not allow")
                });
                return None;
            }
        };
        if self.exceeded.is_none() {
            if usage.bytes > self.max_bytes {
                self.exceeded = Some(format!(
                    "the job's files in its directory took more than its disk limit of {} bytes",
                    self.max_bytes
                ));
            } else if usage.entries > self.max_entries {
                self.exceeded = Some(format!(
                    "the job created more than its limit of {} files in its directory",
                    self.max_entries
                ));
            }
        }
        Some(usage)
    }
}

/// Enforces one job's memory and table limits and records its peak memory and whether a
/// growth was refused (which turns a later trap or failure into `memory_exceeded`).
#[derive(Debug)]
pub(crate) struct JobLimiter {
    memory_limit: usize,
    table_limit: usize,
    /// The job's `limits.instances`, `limits.tables` and `limits.memories`.
    counts: Counts,
    /// Why a growth was refused, if one was.
    pub(crate) refused: Option<String>,
    /// The largest linear memory granted, in bytes.
    pub(crate) peak_memory: usize,
    /// The job's `/work` quota.
    pub(crate) disk: DiskQuota,
    /// Why the epoch callback stopped the guest, if it did.
    pub(crate) stopped: Option<Stop>,
}

/// Why the epoch callback stopped a running guest (which then ends with
/// `Trap::Interrupt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The job was cancelled.
    Cancelled,
    /// The job's wall-clock deadline passed.
    Deadline,
    /// The job's files went past its disk quota.
    DiskQuota,
}

/// How many core instances, tables and memories a job may have in all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) instances: usize,
    pub(crate) tables: usize,
    pub(crate) memories: usize,
}

impl Counts {
    pub(crate) fn of(limits: &wasmq_spec::Limits) -> Counts {
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Counts {
            instances: n(limits.instances),
            tables: n(limits.tables),
            memories: n(limits.memories),
        }
    }
}

impl JobLimiter {
    pub(crate) fn new(
        memory_limit: u64,
        table_limit: usize,
        counts: Counts,
        disk: DiskQuota,
    ) -> Self {
        JobLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            table_limit,
            counts,
            refused: None,
            peak_memory: 0,
            disk,
            stopped: None,
        }
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.refused = Some(format!(
                "memory growth from {current} to {desired} bytes was refused by the limit of {} bytes",
                self.memory_limit
            ));
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_limit {
            self.refused = Some(format!(
                "table growth from {current} to {desired} elements was refused by the limit of {} elements",
                self.table_limit
            ));
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.counts.instances
    }

    fn tables(&self) -> usize {
        self.counts.tables
    }

    fn memories(&self) -> usize {
        self.counts.memories
    }
}
