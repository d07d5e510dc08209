//! exitcode: a wasm32-wasip2 command that ends through `wasi:cli/exit#exit-with-code`
//! (unstable feature `cli-exit-with-code`; wasmtime needs `-S cli-exit-with-code`), with the
//! status taken from argv[1] (0..=255, default 0).
//!
//! Rust's std::process::exit on wasm32-wasip2 only calls `wasi:cli/exit#exit`, whose
//! `result` carries no number: every non-zero status reaches the host as 1. This guest
//! imports exit-with-code itself so a test can check that the host passes the code through.
//! Without the host feature the component does not instantiate (the import is missing).
use std::io::Write;

wit_bindgen::generate!({
    inline: r#"
        package wasmq:exitcode;

        world exitcode {
            import wasi:cli/exit@0.2.6;
        }

        package wasi:cli@0.2.6 {
            @since(version = 0.2.0)
            interface exit {
                @since(version = 0.2.0)
                exit: func(status: result);

                @unstable(feature = cli-exit-with-code)
                exit-with-code: func(status-code: u8);
            }
        }
    "#,
    world: "exitcode",
    features: ["cli-exit-with-code"],
    generate_all,
});

fn main() {
    let code: u8 = match std::env::args().nth(1).map(|s| s.parse::<u8>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("exitcode: argv[1] must be an integer 0..=255");
            wasi::cli::exit::exit(Err(()));
            unreachable!()
        }
    };
    println!("exit-with-code: {code}");
    let _ = std::io::stdout().flush();
    wasi::cli::exit::exit_with_code(code);
    unreachable!("exit-with-code returned")
}
