//! hello: greets its arguments (or the world), then echoes stdin.
//!
//! `GREETING` in the environment replaces "hello". Exits with the status given by
//! `--exit N`, to show how exit codes reach the result.
use std::io::{Read, Write};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut code = 0;
    if let Some(i) = args.iter().position(|a| a == "--exit") {
        code = args.get(i + 1).and_then(|c| c.parse().ok()).unwrap_or(1);
        args.drain(i..(i + 2).min(args.len()));
    }
    let who = if args.is_empty() { "world".to_owned() } else { args.join(" ") };
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned());
    println!("{greeting}, {who}");
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("read stdin");
    std::io::stdout().write_all(&input).expect("write stdout");
    std::process::exit(code);
}
