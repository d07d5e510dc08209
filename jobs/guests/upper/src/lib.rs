//! upper: a plugin for wasmq's function jobs (the plugin ABI of docs/guest-abi.md).
//!
//! `transform` upper-cases its UTF-8 input. Some inputs misbehave on purpose, to show how
//! each ends: `loop`, `grow`, `flood`, and `fail` (returns an error message).

use std::io::Write;

/// Returns a pointer to `len` fresh bytes for the host to write the input into.
#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: i32) -> i32 {
    let buf = vec![0u8; len.max(0) as usize].into_boxed_slice();
    // Leaked on purpose: the whole instance is discarded after one call.
    Box::leak(buf).as_mut_ptr() as i32
}

fn pack(bytes: Vec<u8>, error: bool) -> i64 {
    let len = bytes.len() as u64;
    let ptr = Box::leak(bytes.into_boxed_slice()).as_ptr() as u64;
    ((u64::from(error) << 63) | (ptr << 32) | len) as i64
}

/// The plugin's function: input at (`ptr`, `len`), output returned packed.
///
/// # Safety
/// The host passes a pointer returned by `alloc` and the length it was called with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn transform(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host wrote `len` bytes at `ptr`, which `alloc(len)` returned.
    let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
    match input {
        b"loop" => loop {
            std::hint::black_box(0);
        },
        b"grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        b"flood" => loop {
            let _ = std::io::stdout().write_all(&[b'x'; 1024]);
        },
        b"fail" => pack(b"the input asked to fail".to_vec(), true),
        _ => match std::str::from_utf8(input) {
            Ok(text) => pack(text.to_uppercase().into_bytes(), false),
            Err(e) => pack(format!("the input is not UTF-8: {e}").into_bytes(), true),
        },
    }
}
