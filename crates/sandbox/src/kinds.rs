//! What running each kind of job means: the exports it needs and how it is called.
//!
//! - `command`: a core module's `_start` (WASI preview 1), or the export the job's
//!   `invoke` names (a WASI reactor's entry point), after `_initialize` when exported.
//! - `function`: a core module's function export under the plugin ABI (docs/guest-abi.md):
//!   `alloc(len) -> ptr` receives the input, `f(ptr, len) -> i64` returns
//!   `(ptr << 32) | len` of the output, with bit 63 set when it is an error message.
//! - `component`: a component's `wasi:cli/run` (WASI preview 2).
//! - `handler`: a component of the `wasmq:job/handler` world (wit/job.wit).

use std::time::Instant;

use wasmq_spec::{Exports, Job, JobKind, Rejection, codes};
use wasmtime::{ExternType, Instance, InstancePre, Module, Store, ValType};

use crate::engine::{ComponentState, State};
use crate::modules::Loaded;

/// Host bindings of the `wasmq:job/handler` world.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "handler",
        exports: { default: async },
    });
}

/// How a run ended, short of a trap or an exit (which arrive as errors).
pub(crate) enum RunEnd {
    /// A command returned or exited with this status.
    Exited(i32),
    /// A function or handler returned output: the bytes kept and the full length.
    Output(Vec<u8>, usize),
    /// The guest reported an error itself.
    GuestError(String),
    /// The guest broke the ABI while running (a pointer outside its memory, ...).
    AbiViolation(String),
    /// The component does not have what the job's kind needs; nothing ran.
    Rejected(Rejection),
    /// Instantiation failed before any of the guest's code ran (a start function's trap
    /// is a trap, not this).
    NotInstantiated(wasmtime::Error),
}

/// `Ok` with the instance, or the [`RunEnd`] of an instantiation that failed: a trap
/// (the start function's) stays an error, anything else is [`RunEnd::NotInstantiated`].
fn instantiated<I>(found: wasmtime::Result<I>) -> wasmtime::Result<Result<I, RunEnd>> {
    match found {
        Ok(i) => Ok(Ok(i)),
        Err(e) if e.downcast_ref::<wasmtime::Trap>().is_some() => Err(e),
        Err(e) => Ok(Err(RunEnd::NotInstantiated(e))),
    }
}

/// The name of the function a `function` job calls.
pub(crate) fn export_name(job: &Job) -> &str {
    job.export.as_deref().unwrap_or("transform")
}

fn func_is(
    module: &Module,
    name: &str,
    params: &[fn(&ValType) -> bool],
    results: &[fn(&ValType) -> bool],
) -> Option<bool> {
    match module.get_export(name)? {
        ExternType::Func(f) => {
            let p: Vec<ValType> = f.params().collect();
            let r: Vec<ValType> = f.results().collect();
            Some(
                p.len() == params.len()
                    && r.len() == results.len()
                    && p.iter().zip(params).all(|(v, ok)| ok(v))
                    && r.iter().zip(results).all(|(v, ok)| ok(v)),
            )
        }
        _ => Some(false),
    }
}

fn i32_(v: &ValType) -> bool {
    matches!(v, ValType::I32)
}

fn i64_(v: &ValType) -> bool {
    matches!(v, ValType::I64)
}

/// What a command job calls: the job's `invoke`, or `_start`.
pub(crate) fn entry_name(job: &Job) -> &str {
    job.invoke.as_deref().unwrap_or("_start")
}

/// How a command's entry point returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `() -> ()`: returning is exit status 0.
    Unit,
    /// `() -> i32`: the value is the exit status.
    Status,
}

/// The entry point `name` of `module`, `None` when it has no such export, `Some(Err)` with
/// what is wrong when it is not a function taking nothing and returning nothing or an i32.
fn entry_of(module: &Module, name: &str) -> Option<Result<Entry, String>> {
    if func_is(module, name, &[], &[])? {
        return Some(Ok(Entry::Unit));
    }
    if func_is(module, name, &[], &[i32_]) == Some(true) {
        return Some(Ok(Entry::Status));
    }
    Some(Err(match module.get_export(name) {
        Some(ExternType::Func(f)) => format!(
            "`{name}` is a function {f}, but a command's entry point takes nothing and returns nothing or an i32 (its exit status)"
        ),
        _ => format!("the export `{name}` is not a function"),
    }))
}

/// What a core module offers a job that gives no kind.
pub(crate) fn core_exports(module: &Module, job: &Job) -> Exports {
    Exports {
        component: false,
        command: matches!(entry_of(module, entry_name(job)), Some(Ok(_))),
        // A job that names an entry point to invoke is a command's.
        function: job.invoke.is_none()
            && matches!(module.get_export("memory"), Some(ExternType::Memory(_)))
            && func_is(module, "alloc", &[i32_], &[i32_]) == Some(true)
            && func_is(module, export_name(job), &[i32_, i32_], &[i64_]) == Some(true),
    }
}

/// What a component offers a job that gives no kind; found once, when it is linked.
pub(crate) fn component_exports(pre: &wasmtime::component::InstancePre<ComponentState>) -> Exports {
    Exports {
        component: true,
        command: wasmtime_wasi::p2::bindings::CommandPre::new(pre.clone()).is_ok(),
        function: bindings::HandlerPre::new(pre.clone()).is_ok(),
    }
}

/// Why the module cannot be instantiated within the job's limits on memories and tables,
/// if it cannot (checked before anything runs; wasmtime would refuse it as it
/// instantiates, with a less precise message).
pub(crate) fn over_counts(loaded: &Loaded, limits: &wasmq_spec::Limits) -> Option<Rejection> {
    let needs = match loaded {
        Loaded::Core(pre) => Some(pre.module().resources_required()),
        Loaded::Component(pre, _) => pre.component().resources_required(),
    }?;
    let over = |what: &str, name: &str, n: u32, limit: u64| {
        (u64::from(n) > limit).then(|| {
            Rejection::new(
                codes::LIMIT_TOO_LOW,
                format!(
                    "the module has {n} {what}, more than the job's limits.{name} = {limit}; ask for {n} or more (up to the worker's maximum)"
                ),
            )
        })
    };
    over(
        "linear memories",
        "memories",
        needs.num_memories,
        limits.memories,
    )
    .or_else(|| over("tables", "tables", needs.num_tables, limits.tables))
}

/// Why a module or component offers nothing a job without a kind could run.
pub(crate) fn no_entry_point(component: bool) -> Rejection {
    let message = if component {
        "the component exports neither wasi:cli/run (a WASI command) nor `handle` of the wasmq:job/handler world (wit/job.wit), so there is nothing to run"
    } else {
        "the module exports neither `_start` (a WASI command) nor `alloc` and `transform` (the plugin ABI, docs/guest-abi.md), so there is nothing to run; if it is a WASI reactor, name the export to call with `invoke` (e.g. `\"invoke\": \"run\"`), or build it as a WASI command (e.g. a Rust `bin` for wasm32-wasip1)"
    };
    Rejection::new(codes::NO_ENTRY_POINT, message)
}

/// Checks that a core module has what `kind` calls, before anything runs.
pub(crate) fn check_core_exports(
    module: &Module,
    job: &Job,
    kind: JobKind,
) -> Result<(), Rejection> {
    let has = |name: &str| module.get_export(name).is_some();
    match kind {
        JobKind::Function => {
            let name = export_name(job);
            let mut problems = Vec::new();
            if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
                problems.push("no exported memory named `memory`".to_owned());
            }
            match func_is(module, "alloc", &[i32_], &[i32_]) {
                None => problems.push("no export `alloc`".to_owned()),
                Some(false) => problems.push("`alloc` is not a function (i32) -> i32".to_owned()),
                Some(true) => {}
            }
            match func_is(module, name, &[i32_, i32_], &[i64_]) {
                None => problems.push(format!("no export `{name}`")),
                Some(false) => {
                    problems.push(format!("`{name}` is not a function (i32, i32) -> i64"))
                }
                Some(true) => {}
            }
            if problems.is_empty() {
                return Ok(());
            }
            let hint = if has("_start") {
                "; it exports `_start`: run it as kind `command`"
            } else {
                ""
            };
            Err(Rejection::new(
                codes::ABI_MISMATCH,
                format!(
                    "the module does not follow the plugin ABI (docs/guest-abi.md): {}{hint}",
                    problems.join(", ")
                ),
            ))
        }
        _ => match (entry_of(module, entry_name(job)), &job.invoke) {
            (Some(Ok(_)), _) => Ok(()),
            (Some(Err(why)), _) => Err(Rejection::new(codes::ABI_MISMATCH, why)),
            (None, Some(name)) => {
                let mut funcs: Vec<&str> = module
                    .exports()
                    .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                    .map(|e| e.name())
                    .collect();
                funcs.truncate(20);
                Err(Rejection::new(
                    codes::NO_ENTRY_POINT,
                    format!(
                        "the module exports no function `{name}` to invoke (its function exports: {})",
                        if funcs.is_empty() {
                            "none".to_owned()
                        } else {
                            funcs.join(", ")
                        }
                    ),
                ))
            }
            (None, None) => {
                let hint = if has("alloc") {
                    "; it exports `alloc`: if it is a plugin, run it as kind `function`"
                } else if has("run") || has("_initialize") {
                    "; if it is a WASI reactor, name its entry point with `invoke` (e.g. `\"invoke\": \"run\"`)"
                } else {
                    "; build it as a WASI command (e.g. a Rust `bin` for wasm32-wasip1)"
                };
                Err(Rejection::new(
                    codes::NO_ENTRY_POINT,
                    format!("the module exports no `_start` function{hint}"),
                ))
            }
        },
    }
}

/// Instantiates a core module and calls what `kind` calls.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_core(
    store: &mut Store<State>,
    pre: &InstancePre<State>,
    job: &Job,
    kind: JobKind,
    input: &[u8],
    limits: &wasmq_spec::Limits,
    instantiate_us: &mut u64,
    t: Instant,
) -> wasmtime::Result<RunEnd> {
    let instance = pre.instantiate_async(&mut *store).await;
    *instantiate_us = t.elapsed().as_micros() as u64;
    let instance = match instantiated(instance)? {
        Ok(i) => i,
        Err(end) => return Ok(end),
    };
    if kind == JobKind::Function {
        let cap = usize::try_from(limits.output_bytes).unwrap_or(usize::MAX);
        return call_function(store, &instance, export_name(job), input, cap).await;
    }
    // The WASI reactor convention: `_initialize` first, then the entry point.
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        init.call_async(&mut *store, ()).await?;
    }
    let name = entry_name(job);
    if let Ok(entry) = instance.get_typed_func::<(), i32>(&mut *store, name) {
        let status = entry.call_async(&mut *store, ()).await?;
        return Ok(RunEnd::Exited(status));
    }
    let entry = instance.get_typed_func::<(), ()>(&mut *store, name)?;
    entry.call_async(&mut *store, ()).await?;
    Ok(RunEnd::Exited(0))
}

/// The plugin ABI: `_initialize` (if exported), `alloc(len)`, write the input, call the
/// function, read `(ptr, len)` of the output (or of an error when bit 63 is set).
async fn call_function(
    store: &mut Store<State>,
    instance: &Instance,
    name: &str,
    input: &[u8],
    cap: usize,
) -> wasmtime::Result<RunEnd> {
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        init.call_async(&mut *store, ()).await?;
    }
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "alloc")?;
    let func = instance.get_typed_func::<(i32, i32), i64>(&mut *store, name)?;
    let Ok(len) = i32::try_from(input.len()) else {
        return Ok(RunEnd::AbiViolation(
            "the input is larger than 2 GiB".into(),
        ));
    };
    let ptr = alloc.call_async(&mut *store, len).await? as u32;
    if ptr == 0 && len > 0 {
        return Ok(RunEnd::AbiViolation(format!(
            "`alloc` returned 0 for {len} bytes of input"
        )));
    }
    if memory.write(&mut *store, ptr as usize, input).is_err() {
        return Ok(RunEnd::AbiViolation(format!(
            "`alloc` returned {ptr}, but {len} bytes from there lie outside the guest's memory"
        )));
    }
    let packed = func.call_async(&mut *store, (ptr as i32, len)).await? as u64;
    let is_error = packed >> 63 == 1;
    let out_ptr = ((packed >> 32) & 0x7fff_ffff) as usize;
    let out_len = (packed & 0xffff_ffff) as usize;
    let data = memory.data(&*store);
    let Some(bytes) = out_ptr
        .checked_add(out_len)
        .and_then(|end| data.get(out_ptr..end))
    else {
        return Ok(RunEnd::AbiViolation(format!(
            "`{name}` returned output at {out_ptr} of {out_len} bytes, outside the guest's memory of {} bytes",
            data.len()
        )));
    };
    if is_error {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
        return Ok(RunEnd::GuestError(text));
    }
    Ok(RunEnd::Output(bytes[..out_len.min(cap)].to_vec(), out_len))
}

/// Instantiates a component and calls what `kind` calls.
pub(crate) async fn run_component(
    store: &mut Store<ComponentState>,
    pre: &wasmtime::component::InstancePre<ComponentState>,
    job: &Job,
    kind: JobKind,
    input: &[u8],
    instantiate_us: &mut u64,
    t: Instant,
) -> wasmtime::Result<RunEnd> {
    if kind == JobKind::Handler {
        let handler_pre = match bindings::HandlerPre::new(pre.clone()) {
            Ok(p) => p,
            Err(e) => {
                return Ok(RunEnd::Rejected(Rejection::new(
                    codes::ABI_MISMATCH,
                    format!(
                        "the component does not export `handle` of the wasmq:job/handler world (wit/job.wit): {e:#}; if it is a wasi:cli command, run it as kind `component`"
                    ),
                )));
            }
        };
        let handler = handler_pre.instantiate_async(&mut *store).await;
        *instantiate_us = t.elapsed().as_micros() as u64;
        let handler = match instantiated(handler)? {
            Ok(h) => h,
            Err(end) => return Ok(end),
        };
        let ctx = bindings::wasmq::job::types::Context {
            id: job.id().to_owned(),
            args: job.args.clone(),
            env: job
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        return Ok(match handler.call_handle(&mut *store, input, &ctx).await? {
            Ok(bytes) => {
                let len = bytes.len();
                RunEnd::Output(bytes, len)
            }
            Err(message) => RunEnd::GuestError(message),
        });
    }
    let command_pre = match wasmtime_wasi::p2::bindings::CommandPre::new(pre.clone()) {
        Ok(p) => p,
        Err(e) => {
            return Ok(RunEnd::Rejected(Rejection::new(
                codes::NO_ENTRY_POINT,
                format!(
                    "the component does not export wasi:cli/run: {e:#}; if it implements wasmq:job/handler, run it as kind `handler`"
                ),
            )));
        }
    };
    let command = command_pre.instantiate_async(&mut *store).await;
    *instantiate_us = t.elapsed().as_micros() as u64;
    let command = match instantiated(command)? {
        Ok(c) => c,
        Err(end) => return Ok(end),
    };
    Ok(match command.wasi_cli_run().call_run(&mut *store).await? {
        Ok(()) => RunEnd::Exited(0),
        Err(()) => RunEnd::Exited(1),
    })
}
