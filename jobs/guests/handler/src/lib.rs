//! handler: a component of the `wasmq:job/handler` world (wit/job.wit).
//!
//! `handle` answers with a JSON object describing the call: the job id, its args, the
//! input's length and the input upper-cased. Some inputs misbehave on purpose: `loop`,
//! `grow`, `flood`, and `fail` (returns `err`).

use std::io::Write;

wit_bindgen::generate!({
    world: "handler",
    path: "../../../wit",
});



struct Handler;

impl Guest for Handler {
    fn handle(input: Vec<u8>, ctx: Context) -> Result<Vec<u8>, String> {
        match input.as_slice() {
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
            b"fail" => Err(format!("job {} asked to fail", ctx.id)),
            _ => {
                let text = String::from_utf8_lossy(&input);
                let args: Vec<String> = ctx.args.iter().map(|a| format!("{a:?}")).collect();
                Ok(format!(
                    "{{\"id\":{:?},\"args\":[{}],\"env\":{},\"input_len\":{},\"upper\":{:?}}}",
                    ctx.id,
                    args.join(","),
                    ctx.env.len(),
                    input.len(),
                    text.to_uppercase()
                )
                .into_bytes())
            }
        }
    }
}

export!(Handler);
