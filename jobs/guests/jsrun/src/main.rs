//! jsrun: a JavaScript interpreter (Boa) as a WASI command.
//!
//! `jsrun [SCRIPT_PATH]` evaluates the script file at SCRIPT_PATH (a path inside the
//! sandbox, e.g. `/work/script.js`), or standard input when no path is given, as a classic
//! script (not a module), then runs the promise jobs and timers it queued. `console.log`
//! and friends write to stdout (`console.error`/`console.warn` to stderr). The value of the
//! last expression is not printed.
//!
//! Exit status: 0 on success; 1 on an uncaught exception, or a promise rejected with no
//! handler once all jobs ran (`Uncaught <error>` on stderr); 2 when the script cannot be
//! read.
//!
//! The interpreter has no loop, time or memory limit of its own: the host stops a runaway
//! script (timeout, fuel, memory limit). Timers wait by spinning, so a `setTimeout` of N
//! ms costs N ms of CPU and counts against the job's timeout.
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use boa_engine::builtins::promise::{OperationType, PromiseState};
use boa_engine::context::HostHooks;
use boa_engine::object::builtins::JsPromise;
use boa_engine::{Context, JsError, JsObject, Source, builtins::promise::Promise};
use boa_runtime::extensions::ConsoleExtension;

/// Host hooks that remember promises rejected with no handler (HostPromiseRejectionTracker),
/// so that a failed `async` function is reported rather than silently dropped.
#[derive(Default)]
struct Hooks {
    unhandled: RefCell<Vec<JsObject<Promise>>>,
}

impl HostHooks for Hooks {
    fn promise_rejection_tracker(
        &self,
        promise: &JsObject<Promise>,
        operation: OperationType,
        _context: &mut Context,
    ) {
        let mut unhandled = self.unhandled.borrow_mut();
        match operation {
            OperationType::Reject => unhandled.push(promise.clone()),
            OperationType::Handle => unhandled.retain(|p| !JsObject::equals(p, promise)),
        }
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let path = args.next();
    if args.next().is_some() {
        eprintln!("usage: jsrun [SCRIPT_PATH]");
        std::process::exit(2);
    }
    let code = match &path {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.to_string_lossy())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf).map_err(|e| format!("stdin: {e}"))
        }
    };
    let code = code.unwrap_or_else(|e| {
        eprintln!("jsrun: cannot read {e}");
        std::process::exit(2);
    });

    let hooks = Rc::new(Hooks::default());
    let mut context = Context::builder()
        .host_hooks(hooks.clone())
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot create the context: {e}")));
    boa_runtime::register(ConsoleExtension::default(), None, &mut context)
        .unwrap_or_else(|e| fail(&format!("cannot set up the runtime: {e}")));

    let source = Source::from_bytes(&code);
    let source = match &path {
        Some(p) => source.with_path(Path::new(p)),
        None => source,
    };
    if let Err(e) = context.eval(source).and_then(|_| context.run_jobs()) {
        eprintln!("Uncaught {e}");
        std::process::exit(1);
    }
    let unhandled = std::mem::take(&mut *hooks.unhandled.borrow_mut());
    let mut status = 0;
    for promise in unhandled {
        if let PromiseState::Rejected(reason) = JsPromise::from(promise).state() {
            eprintln!("Uncaught (in promise) {}", JsError::from_opaque(reason));
            status = 1;
        }
    }
    // Exit without dropping the context: the heap goes with the instance.
    std::process::exit(status);
}

fn fail(message: &str) -> ! {
    eprintln!("jsrun: {message}");
    std::process::exit(2);
}
