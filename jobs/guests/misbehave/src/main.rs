//! misbehave: a guest that does one bad thing on purpose, chosen by its first argument:
//! `loop` (spin forever), `grow` (allocate until memory runs out), `flood` (write to
//! stdout forever), `exit N` (exit with status N), `print TEXT` (print and exit 0).
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("loop") => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Some("grow") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        Some("flood") => {
            let line = [b'x'; 1024];
            let mut out = std::io::stdout().lock();
            loop {
                let _ = out.write_all(&line);
            }
        }
        Some("exit") => std::process::exit(args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1)),
        Some("print") => println!("{}", args[1..].join(" ")),
        _ => {
            eprintln!("usage: misbehave loop|grow|flood|exit N|print TEXT");
            std::process::exit(2);
        }
    }
}
