//! fsprobe: tries filesystem and environment operations and reports each outcome on one
//! line, so a job can show what its sandbox allows.
//!
//! Each argument is `OP:PATH` (or just `env`):
//! - `read:P` reads a file, `write:P` creates/truncates one, `append:P` appends,
//!   `list:P` lists a directory, `mkdir:P`, `rm:P`;
//! - `env` prints every environment variable the guest can see.
//!
//! Output lines: `OP PATH ok [detail]` or `OP PATH error: ...`. Exit status 0 always.
use std::io::Write;

fn main() {
    for arg in std::env::args().skip(1) {
        if arg == "env" {
            for (k, v) in std::env::vars() {
                println!("env {k}={v}");
            }
            continue;
        }
        let Some((op, path)) = arg.split_once(':') else {
            println!("{arg} - error: expected OP:PATH");
            continue;
        };
        let outcome: std::io::Result<String> = match op {
            "read" => std::fs::read(path).map(|b| format!("{} bytes: {}", b.len(), String::from_utf8_lossy(&b).trim())),
            "write" => std::fs::write(path, b"written by fsprobe\n").map(|_| String::new()),
            "append" => std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(b"appended\n"))
                .map(|_| String::new()),
            "list" => std::fs::read_dir(path).map(|rd| {
                let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                names.join(",")
            }),
            "mkdir" => std::fs::create_dir_all(path).map(|_| String::new()),
            "rm" => std::fs::remove_file(path).map(|_| String::new()),
            _ => Err(std::io::Error::other("unknown operation")),
        };
        match outcome {
            Ok(detail) if detail.is_empty() => println!("{op} {path} ok"),
            Ok(detail) => println!("{op} {path} ok {detail}"),
            Err(e) => println!("{op} {path} error: {e}"),
        }
    }
}
