//! What a module may ask of the compiler: a cheap pass over its code before cranelift sees
//! it, refusing the shapes whose compile time explodes.
//!
//! Cranelift's time grows with the square of a function's control nesting (measured here:
//! 10,000 nested blocks 0.35 s, 50,000 7.3 s, 100,000 27 s for a 300 KB module), so one
//! small module could hold a worker for minutes before any job limit applies. Real
//! compilers' output nests far less (a Rust `match` of a few thousand arms nests a few
//! thousand blocks), so the bounds below refuse only bombs.

use wasmparser::{Operator, Parser, Payload};

/// Deepest control nesting (`block`, `loop`, `if`, `try_table`) in one function.
pub(crate) const MAX_NESTING: usize = 20_000;
/// Most locals one function declares.
pub(crate) const MAX_LOCALS: u64 = 50_000;

/// Checks every function of a module or component against the bounds; the message says
/// which function broke which bound. Malformed bytes pass: the compiler refuses them with
/// its own, better message.
pub(crate) fn check(bytes: &[u8]) -> Result<(), String> {
    let mut index = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CodeSectionEntry(body)) = payload else {
            continue;
        };
        let func = index;
        index += 1;
        let Ok(locals) = body.get_locals_reader() else {
            continue;
        };
        let mut count = 0u64;
        for local in locals {
            let Ok((n, _)) = local else { break };
            count += u64::from(n);
        }
        if count > MAX_LOCALS {
            return Err(format!(
                "function {func} declares {count} locals; this worker compiles at most {MAX_LOCALS} per function"
            ));
        }
        let Ok(mut ops) = body.get_operators_reader() else {
            continue;
        };
        let mut depth = 0usize;
        while !ops.eof() {
            let Ok(op) = ops.read() else { break };
            match op {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::TryTable { .. } => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(format!(
                            "function {func} nests blocks more than {MAX_NESTING} deep; this worker does not compile code nested deeper (its compile time grows with the square of the depth)"
                        ));
                    }
                }
                Operator::End => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Vec<u8> {
        let wat = format!(
            "(module (func (export \"_start\") {} {}))",
            "(block ".repeat(depth),
            ")".repeat(depth)
        );
        wat::parse_str(wat).unwrap()
    }

    #[test]
    fn refuses_deep_nesting_and_many_locals_only() {
        assert!(check(&nested(1000)).is_ok());
        let e = check(&nested(MAX_NESTING + 1)).unwrap_err();
        assert!(e.contains("function 0 nests"), "{e}");
        let wat = format!("(module (func (local {})))", "i32 ".repeat(60_000));
        let e = check(&wat::parse_str(wat).unwrap()).unwrap_err();
        assert!(e.contains("60000 locals"), "{e}");
        assert!(check(b"not wasm").is_ok(), "left to the compiler");
    }
}
