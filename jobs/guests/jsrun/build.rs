//! Links jsrun with a 4 MiB shadow stack (in linear memory) instead of Rust's default 1 MiB
//! for wasm. Boa's parser recurses once per nesting level of the source with large frames
//! (about 15 KiB of shadow stack a level): with 1 MiB, `JSON.parse` of 70 nested arrays
//! (Boa parses JSON text as a script) already overflows. With 4 MiB, wasmtime's own limit
//! on the native stack (`max_wasm_stack`, 512 KiB by default: about 130 levels of nested
//! parentheses) is reached first. The stack lies at the bottom of linear memory, below the
//! data and the heap, so an overflow of it is an out-of-bounds trap, never heap corruption.
//! It is part of the module's initial memory, so it counts against the job's memory limit.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "wasm")) {
        println!("cargo::rustc-link-arg-bins=-zstack-size=4194304");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
