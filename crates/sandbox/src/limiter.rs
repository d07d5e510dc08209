//! Per-job memory and table limits, and what the job used.

use wasmtime::ResourceLimiter;

/// Enforces one job's memory and table limits and records its peak memory and whether a
/// growth was refused (which turns a later trap or failure into `memory_exceeded`).
#[derive(Debug)]
pub(crate) struct JobLimiter {
    memory_limit: usize,
    table_limit: usize,
    /// Why a growth was refused, if one was.
    pub(crate) refused: Option<String>,
    /// The largest linear memory granted, in bytes.
    pub(crate) peak_memory: usize,
}

impl JobLimiter {
    pub(crate) fn new(memory_limit: u64, table_limit: usize) -> Self {
        JobLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            table_limit,
            refused: None,
            peak_memory: 0,
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
        4
    }

    fn tables(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        4
    }
}
