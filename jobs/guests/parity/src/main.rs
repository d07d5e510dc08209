//! parity: one WASI behaviour scenario per run, printed as `name: value` lines, for the
//! differential test that runs the same scenario under wasmq and under a reference
//! `wasmtime run --dir D::/` (the job directory preopened at `/`, cwd `/`, no env, stdin
//! from a pipe, no network).
//!
//! `parity SCENARIO [ARGS...]`. Scenarios: relpath abspath readdir seek pread append rename
//! symlink hardlink truncate times renumber dirfd poll args random stdin exit sockets
//! errors. Each works with relative paths in the current directory (the job directory),
//! which holds `input.txt` ("hello parity\n"); it first removes whatever an earlier run of
//! the same scenario left, so a rerun in the same directory prints the same.
//!
//! The output is deterministic: sizes, contents, error kinds and raw errno numbers, and
//! booleans. Never timestamps of now, random bytes, inode or descriptor numbers, nor argv[0].
//! Exit status 0, except for `exit N` (status N) and an unknown scenario (2).
//!
//! Built for wasm32-wasip1 (parity.wasm) and wasm32-wasip2 (parity-p2.wasm). Preview 1 calls
//! that std lacks go through the `wasi` crate; on p2 those lines say `unsupported on p2`.
//! std::os::wasi::fs is nightly-only, so positional I/O, symlink creation and link counts
//! go through wasi-libc (the `libc` crate) on both targets.
use std::ffi::CString;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
#[cfg(all(target_os = "wasi", target_env = "p1"))]
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SCENARIOS: &[&str] = &[
    "relpath", "abspath", "readdir", "seek", "pread", "append", "rename", "symlink", "hardlink", "truncate", "times",
    "renumber", "dirfd", "poll", "args", "random", "stdin", "exit", "sockets", "errors",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(scenario) = args.get(1).map(String::as_str) else {
        eprintln!("usage: parity SCENARIO [ARGS...]; scenarios: {}", SCENARIOS.join(" "));
        std::process::exit(2);
    };
    kv("scenario", scenario);
    match scenario {
        "relpath" => paths(""),
        "abspath" => paths("/"),
        "readdir" => readdir(),
        "seek" => seek(),
        "pread" => pread(),
        "append" => append(),
        "rename" => rename(),
        "symlink" => symlink(),
        "hardlink" => hardlink(),
        "truncate" => truncate(),
        "times" => times(),
        "renumber" => renumber(),
        "dirfd" => dirfd(),
        "poll" => poll(),
        "args" => show_args(&args),
        "random" => random(),
        "stdin" => stdin(),
        "exit" => exit(&args),
        "sockets" => sockets(),
        "errors" => errors(),
        _ => {
            eprintln!("parity: unknown scenario {scenario:?}; scenarios: {}", SCENARIOS.join(" "));
            std::process::exit(2);
        }
    }
    kv("done", "yes");
}

// ---- output helpers ----

fn kv(name: &str, value: impl Display) {
    println!("{name}: {value}");
}

/// `error KIND errno N` (N is `none` for errors that did not come from the OS).
fn err(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("error {:?} errno {n}", e.kind()),
        None => format!("error {:?} errno none", e.kind()),
    }
}

fn res<T>(r: io::Result<T>, f: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => {
            let s = f(v);
            if s.is_empty() { "ok".to_string() } else { format!("ok {s}") }
        }
        Err(e) => err(&e),
    }
}

fn unit<T>(r: io::Result<T>) -> String {
    res(r, |_| String::new())
}

fn text(b: &[u8]) -> String {
    format!("{} bytes {:?}", b.len(), String::from_utf8_lossy(b))
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "(empty)".to_string();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn read_text(path: &str) -> String {
    res(fs::read(path), |b| text(&b))
}

/// Removes what an earlier run left (files, links, directory trees), ignoring errors.
fn clean(paths: &[&str]) {
    for p in paths {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = fs::remove_file(p);
            }
            Err(_) => {}
        }
    }
}

fn file_type(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else {
        "other"
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in path")
}

/// `-1` (with errno set) from a libc call becomes the last OS error.
fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret as usize) }
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn errno(e: wasi::Errno) -> String {
    format!("errno {} ({})", e.name(), e.raw())
}

// ---- scenarios ----

/// relpath (prefix "") and abspath (prefix "/"): the same operations through relative or
/// absolute paths.
fn paths(prefix: &str) {
    let p = |s: &str| format!("{prefix}{s}");
    clean(&["out.txt", "sub"]);
    kv("read input.txt", read_text(&p("input.txt")));
    kv("read ./input.txt", read_text(&p("./input.txt")));
    kv("write out.txt", unit(fs::write(p("out.txt"), b"written by parity\n")));
    kv("create_dir sub", unit(fs::create_dir(p("sub"))));
    kv("write sub/nested.txt", unit(fs::write(p("sub/nested.txt"), b"nested\n")));
    kv("read sub/../out.txt", read_text(&p("sub/../out.txt")));
    kv("read sub/./nested.txt", read_text(&p("sub/./nested.txt")));
    kv("read sub//nested.txt", read_text(&p("sub//nested.txt")));
    kv("metadata out.txt", res(fs::metadata(p("out.txt")), |m| format!("len {} file {}", m.len(), yes(m.is_file()))));
    kv("metadata sub", res(fs::metadata(p("sub")), |m| format!("dir {}", yes(m.is_dir()))));
    kv("exists input.txt", yes(fs::exists(p("input.txt")).unwrap_or(false)));
    kv("exists nope.txt", yes(fs::exists(p("nope.txt")).unwrap_or(false)));
    if prefix == "/" {
        kv("read //input.txt", read_text("//input.txt"));
        kv("read /./input.txt", read_text("/./input.txt"));
        kv("read /sub/../../input.txt", read_text("/sub/../../input.txt"));
    } else {
        kv("read sub/../../input.txt", read_text("sub/../../input.txt"));
    }
    kv("current_dir", res(std::env::current_dir(), |d| d.display().to_string()));
}

fn list(path: &str) -> String {
    res(fs::read_dir(path), |rd| {
        let mut names: Vec<String> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => {
                    let t = e.file_type().map(file_type).unwrap_or("error");
                    names.push(format!("{}({t})", e.file_name().to_string_lossy()));
                }
                Err(e) => names.push(err(&e)),
            }
        }
        names.sort();
        format!("{} entries [{}]", names.len(), names.join(" "))
    })
}

fn readdir() {
    clean(&["rd-b.txt", "rd-a.txt", "rd-dir", "rd-empty"]);
    kv("write rd-b.txt", unit(fs::write("rd-b.txt", b"bb")));
    kv("write rd-a.txt", unit(fs::write("rd-a.txt", b"a")));
    kv("create_dir rd-dir", unit(fs::create_dir("rd-dir")));
    kv("create_dir rd-empty", unit(fs::create_dir("rd-empty")));
    kv("write rd-dir/inner.txt", unit(fs::write("rd-dir/inner.txt", b"inner")));
    kv("list .", list("."));
    kv("list /", list("/"));
    kv("list rd-dir", list("rd-dir"));
    kv("list rd-empty", list("rd-empty"));
    kv("list rd-dir/..", list("rd-dir/.."));
    kv("list input.txt", list("input.txt"));
    kv("list missing", list("missing"));
    // Sizes of files only: directory sizes depend on the host filesystem.
    let mut sizes = Vec::new();
    if let Ok(rd) = fs::read_dir(".") {
        let mut es: Vec<_> = rd.flatten().collect();
        es.sort_by_key(|e| e.file_name());
        for e in es {
            if let Ok(m) = e.metadata() {
                if m.is_file() {
                    sizes.push(format!("{}={}", e.file_name().to_string_lossy(), m.len()));
                }
            }
        }
    }
    kv("file sizes", sizes.join(" "));
}

fn seek() {
    clean(&["seek.txt"]);
    kv("write seek.txt", unit(fs::write("seek.txt", b"0123456789")));
    let mut f = match OpenOptions::new().read(true).write(true).open("seek.txt") {
        Ok(f) => f,
        Err(e) => return kv("open seek.txt", err(&e)),
    };
    let read = |f: &mut File, n: usize| {
        let mut buf = vec![0u8; n];
        res(f.read(&mut buf), |got| text(&buf[..got]))
    };
    kv("position at open", res(f.stream_position(), |p| p.to_string()));
    kv("seek Start(3)", res(f.seek(SeekFrom::Start(3)), |p| p.to_string()));
    kv("read 2", read(&mut f, 2));
    kv("seek Current(2)", res(f.seek(SeekFrom::Current(2)), |p| p.to_string()));
    kv("read 1", read(&mut f, 1));
    kv("seek End(-3)", res(f.seek(SeekFrom::End(-3)), |p| p.to_string()));
    kv("read 10", read(&mut f, 10));
    kv("read at eof", read(&mut f, 10));
    kv("seek Current(-100)", res(f.seek(SeekFrom::Current(-100)), |p| p.to_string()));
    kv("position after bad seek", res(f.stream_position(), |p| p.to_string()));
    kv("seek End(5)", res(f.seek(SeekFrom::End(5)), |p| p.to_string()));
    kv("read past end", read(&mut f, 4));
    kv("write X past end", unit(f.write_all(b"X")));
    kv("position", res(f.stream_position(), |p| p.to_string()));
    kv("rewind", unit(f.rewind()));
    kv("position after rewind", res(f.stream_position(), |p| p.to_string()));
    drop(f);
    kv("contents", res(fs::read("seek.txt"), |b| format!("len {} hex {}", b.len(), hex(&b))));
}

fn pread_at(f: &File, n: usize, off: u64) -> String {
    let mut buf = vec![0u8; n];
    let r = check(unsafe { libc::pread(f.as_raw_fd(), buf.as_mut_ptr().cast(), n, off as i64) });
    res(r, |got| text(&buf[..got]))
}

fn pwrite_at(f: &File, data: &[u8], off: u64) -> String {
    let r = check(unsafe { libc::pwrite(f.as_raw_fd(), data.as_ptr().cast(), data.len(), off as i64) });
    res(r, |n| format!("{n} bytes"))
}

fn pread() {
    clean(&["pread.txt", "pread-append.txt"]);
    kv("write pread.txt", unit(fs::write("pread.txt", b"abcdefghij")));
    let mut f = match OpenOptions::new().read(true).write(true).open("pread.txt") {
        Ok(f) => f,
        Err(e) => return kv("open pread.txt", err(&e)),
    };
    kv("seek Start(2)", res(f.seek(SeekFrom::Start(2)), |p| p.to_string()));
    kv("read_at 3 @5", pread_at(&f, 3, 5));
    kv("position after read_at", res(f.stream_position(), |p| p.to_string()));
    kv("write_at XY @8", pwrite_at(&f, b"XY", 8));
    kv("position after write_at", res(f.stream_position(), |p| p.to_string()));
    kv("read_at 4 @8", pread_at(&f, 4, 8));
    kv("read_at 4 @10 (eof)", pread_at(&f, 4, 10));
    kv("read_at 4 @100", pread_at(&f, 4, 100));
    kv("write_at Z @12 (past eof)", pwrite_at(&f, b"Z", 12));
    kv("position after write_at past eof", res(f.stream_position(), |p| p.to_string()));
    let mut rest = Vec::new();
    kv("read_to_end from position", res(f.read_to_end(&mut rest), |_| format!("hex {}", hex(&rest))));
    drop(f);
    kv("contents", res(fs::read("pread.txt"), |b| format!("len {} hex {}", b.len(), hex(&b))));
    // Positional I/O on a read-only and on an append-mode descriptor.
    match File::open("pread.txt") {
        Ok(ro) => kv("write_at on read-only", pwrite_at(&ro, b"no", 0)),
        Err(e) => kv("open read-only", err(&e)),
    }
    kv("write pread-append.txt", unit(fs::write("pread-append.txt", b"0123")));
    match OpenOptions::new().append(true).open("pread-append.txt") {
        Ok(ap) => kv("write_at @0 on append-mode", pwrite_at(&ap, b"AB", 0)),
        Err(e) => kv("open append-mode", err(&e)),
    }
    kv("append-mode contents", read_text("pread-append.txt"));
    // On wasm32-wasip2, wasi-libc's pread on a write-only descriptor traps (out-of-bounds
    // memory access inside pread), so only p1 tries it.
    if cfg!(all(target_os = "wasi", target_env = "p1")) {
        match File::create("pread-wo.txt") {
            Ok(wo) => kv("read_at on write-only", pread_at(&wo, 2, 0)),
            Err(e) => kv("create write-only", err(&e)),
        }
        let _ = fs::remove_file("pread-wo.txt");
    } else {
        kv("read_at on write-only", "unsupported on p2");
    }
}

fn append() {
    clean(&["append.txt"]);
    kv("write append.txt", unit(fs::write("append.txt", b"start\n")));
    match OpenOptions::new().append(true).open("append.txt") {
        Ok(mut f) => {
            kv("seek Start(0)", res(f.seek(SeekFrom::Start(0)), |p| p.to_string()));
            kv("write more", unit(f.write_all(b"more\n")));
            kv("position after write", res(f.stream_position(), |p| p.to_string()));
            kv("seek Start(1)", res(f.seek(SeekFrom::Start(1)), |p| p.to_string()));
            kv("write again", unit(f.write_all(b"again\n")));
            kv("position after second write", res(f.stream_position(), |p| p.to_string()));
            let mut buf = [0u8; 4];
            kv("read on append-only", res(f.read(&mut buf), |n| format!("{n} bytes")));
        }
        Err(e) => kv("open append", err(&e)),
    }
    kv("contents", read_text("append.txt"));
    match OpenOptions::new().read(true).append(true).open("append.txt") {
        Ok(mut f) => {
            let mut buf = [0u8; 5];
            kv("read+append read 5", res(f.read(&mut buf), |n| text(&buf[..n])));
            kv("read+append write", unit(f.write_all(b"tail\n")));
            kv("position after write", res(f.stream_position(), |p| p.to_string()));
            kv("seek Start(6)", res(f.seek(SeekFrom::Start(6)), |p| p.to_string()));
            let mut rest = Vec::new();
            kv("read rest", res(f.read_to_end(&mut rest), |_| text(&rest)));
        }
        Err(e) => kv("open read+append", err(&e)),
    }
    kv("contents after read+append", read_text("append.txt"));
    match OpenOptions::new().append(true).create(true).open("append-new.txt") {
        Ok(mut f) => kv("append create new", unit(f.write_all(b"new\n"))),
        Err(e) => kv("append create new", err(&e)),
    }
    kv("append-new.txt", read_text("append-new.txt"));
    let _ = fs::remove_file("append-new.txt");
}

fn rename() {
    clean(&["rn-a.txt", "rn-b.txt", "rn-c.txt", "rn-d1", "rn-d2", "rn-d3", "rn-full"]);
    kv("write rn-a.txt", unit(fs::write("rn-a.txt", b"A\n")));
    kv("rename rn-a.txt -> rn-b.txt", unit(fs::rename("rn-a.txt", "rn-b.txt")));
    kv("exists rn-a.txt", yes(fs::exists("rn-a.txt").unwrap_or(false)));
    kv("read rn-b.txt", read_text("rn-b.txt"));
    kv("write rn-c.txt", unit(fs::write("rn-c.txt", b"C\n")));
    kv("rename rn-b.txt -> rn-c.txt (over existing)", unit(fs::rename("rn-b.txt", "rn-c.txt")));
    kv("read rn-c.txt", read_text("rn-c.txt"));
    kv("exists rn-b.txt", yes(fs::exists("rn-b.txt").unwrap_or(false)));
    kv("create_dir rn-d1", unit(fs::create_dir("rn-d1")));
    kv("write rn-d1/f.txt", unit(fs::write("rn-d1/f.txt", b"in dir\n")));
    kv("rename rn-d1 -> rn-d2 (dir)", unit(fs::rename("rn-d1", "rn-d2")));
    kv("read rn-d2/f.txt", read_text("rn-d2/f.txt"));
    kv("rename rn-c.txt -> rn-d2/c.txt (into dir)", unit(fs::rename("rn-c.txt", "rn-d2/c.txt")));
    kv("list rn-d2", list("rn-d2"));
    kv("rename missing.txt -> x.txt", unit(fs::rename("missing.txt", "x.txt")));
    kv("create_dir rn-d3", unit(fs::create_dir("rn-d3")));
    kv("rename rn-d2/c.txt -> rn-d3 (file over dir)", unit(fs::rename("rn-d2/c.txt", "rn-d3")));
    kv("rename rn-d3 -> rn-d2 (dir over non-empty dir)", unit(fs::rename("rn-d3", "rn-d2")));
    kv("write rn-full", unit(fs::write("rn-full", b"f")));
    kv("rename rn-d3 -> rn-full (dir over file)", unit(fs::rename("rn-d3", "rn-full")));
    kv("rename rn-d2 -> rn-d2/inside (into itself)", unit(fs::rename("rn-d2", "rn-d2/inside")));
    kv("rename rn-full -> ../rn-out", unit(fs::rename("rn-full", "../rn-out")));
    kv("rename rn-full -> rn-full (same)", unit(fs::rename("rn-full", "rn-full")));
}

fn make_symlink(target: &str, link: &str) -> io::Result<()> {
    let (t, l) = (cstr(target), cstr(link));
    check(unsafe { libc::symlink(t.as_ptr(), l.as_ptr()) } as isize).map(|_| ())
}

fn meta(m: fs::Metadata) -> String {
    format!("type {} len {}", file_type(m.file_type()), if m.is_dir() { "-".to_string() } else { m.len().to_string() })
}

fn symlink() {
    clean(&["ln-file", "ln-abs", "ln-dangling", "ln-sub", "ln-esc", "ln-dir", "ln-loop", "ln-chain"]);
    kv("symlink input.txt <- ln-file", unit(make_symlink("input.txt", "ln-file")));
    kv("read_link ln-file", res(fs::read_link("ln-file"), |p| p.display().to_string()));
    kv("read ln-file", read_text("ln-file"));
    kv("symlink_metadata ln-file", res(fs::symlink_metadata("ln-file"), meta));
    kv("metadata ln-file", res(fs::metadata("ln-file"), meta));
    kv("symlink ln-file <- ln-chain", unit(make_symlink("ln-file", "ln-chain")));
    kv("read ln-chain", read_text("ln-chain"));
    kv("symlink /input.txt <- ln-abs (absolute)", unit(make_symlink("/input.txt", "ln-abs")));
    kv("read_link ln-abs", res(fs::read_link("ln-abs"), |p| p.display().to_string()));
    kv("read ln-abs", read_text("ln-abs"));
    kv("symlink missing.txt <- ln-dangling", unit(make_symlink("missing.txt", "ln-dangling")));
    kv("read ln-dangling", read_text("ln-dangling"));
    kv("symlink_metadata ln-dangling", res(fs::symlink_metadata("ln-dangling"), meta));
    kv("metadata ln-dangling", res(fs::metadata("ln-dangling"), meta));
    kv("exists ln-dangling", res(fs::exists("ln-dangling"), |b| yes(b).to_string()));
    kv("create_dir ln-sub", unit(fs::create_dir("ln-sub")));
    kv("symlink .. <- ln-sub/up", unit(make_symlink("..", "ln-sub/up")));
    kv("read_link ln-sub/up", res(fs::read_link("ln-sub/up"), |p| p.display().to_string()));
    kv("read ln-sub/up/input.txt", read_text("ln-sub/up/input.txt"));
    kv("metadata ln-sub/up", res(fs::metadata("ln-sub/up"), meta));
    kv("symlink .. <- ln-esc (escapes)", unit(make_symlink("..", "ln-esc")));
    kv("read_link ln-esc", res(fs::read_link("ln-esc"), |p| p.display().to_string()));
    kv("read ln-esc/input.txt", read_text("ln-esc/input.txt"));
    kv("list ln-esc", list("ln-esc"));
    kv("symlink_metadata ln-esc", res(fs::symlink_metadata("ln-esc"), meta));
    kv("metadata ln-esc", res(fs::metadata("ln-esc"), meta));
    kv("symlink ln-sub <- ln-dir", unit(make_symlink("ln-sub", "ln-dir")));
    kv("metadata ln-dir", res(fs::metadata("ln-dir"), meta));
    kv("list ln-dir", list("ln-dir"));
    kv("write ln-dir/via.txt", unit(fs::write("ln-dir/via.txt", b"via link\n")));
    kv("read ln-sub/via.txt", read_text("ln-sub/via.txt"));
    kv("symlink ln-loop <- ln-loop", unit(make_symlink("ln-loop", "ln-loop")));
    kv("read ln-loop", read_text("ln-loop"));
    kv("symlink input.txt <- ln-file (exists)", unit(make_symlink("input.txt", "ln-file")));
    kv("read_link input.txt (not a link)", res(fs::read_link("input.txt"), |p| p.display().to_string()));
    kv("write through ln-file", unit(OpenOptions::new().append(true).open("ln-file").and_then(|mut f| f.write_all(b""))));
    kv("remove_file ln-file", unit(fs::remove_file("ln-file")));
    kv("read input.txt after", read_text("input.txt"));
    kv("remove_file ln-dir (link to dir)", unit(fs::remove_file("ln-dir")));
    kv("exists ln-sub", yes(fs::exists("ln-sub").unwrap_or(false)));
}

fn nlink(path: &str) -> String {
    let c = cstr(path);
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = check(unsafe { libc::stat(c.as_ptr(), &mut st) } as isize);
    res(r, |_| st.st_nlink.to_string())
}

fn ino(path: &str) -> Option<u64> {
    let c = cstr(path);
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::stat(c.as_ptr(), &mut st) } == 0).then_some(st.st_ino)
}

fn hardlink() {
    clean(&["hl-1.txt", "hl-2.txt", "hl-3.txt", "hl-dir"]);
    kv("write hl-1.txt", unit(fs::write("hl-1.txt", b"linked\n")));
    kv("nlink hl-1.txt", nlink("hl-1.txt"));
    kv("hard_link hl-1.txt -> hl-2.txt", unit(fs::hard_link("hl-1.txt", "hl-2.txt")));
    kv("nlink hl-1.txt", nlink("hl-1.txt"));
    kv("nlink hl-2.txt", nlink("hl-2.txt"));
    kv("same inode", yes(ino("hl-1.txt").is_some() && ino("hl-1.txt") == ino("hl-2.txt")));
    kv("append via hl-2.txt", unit(OpenOptions::new().append(true).open("hl-2.txt").and_then(|mut f| f.write_all(b"more\n"))));
    kv("read hl-1.txt", read_text("hl-1.txt"));
    kv("hard_link hl-1.txt -> hl-2.txt (exists)", unit(fs::hard_link("hl-1.txt", "hl-2.txt")));
    kv("hard_link missing.txt -> hl-3.txt", unit(fs::hard_link("missing.txt", "hl-3.txt")));
    kv("create_dir hl-dir", unit(fs::create_dir("hl-dir")));
    kv("hard_link hl-dir -> hl-3.txt (dir)", unit(fs::hard_link("hl-dir", "hl-3.txt")));
    kv("hard_link hl-1.txt -> hl-dir/in.txt", unit(fs::hard_link("hl-1.txt", "hl-dir/in.txt")));
    kv("nlink hl-1.txt", nlink("hl-1.txt"));
    kv("hard_link hl-1.txt -> ../hl-out.txt", unit(fs::hard_link("hl-1.txt", "../hl-out.txt")));
    kv("remove_file hl-1.txt", unit(fs::remove_file("hl-1.txt")));
    kv("nlink hl-2.txt", nlink("hl-2.txt"));
    kv("read hl-2.txt", read_text("hl-2.txt"));
    kv("read hl-dir/in.txt", read_text("hl-dir/in.txt"));
    kv("metadata hl-dir", res(fs::metadata("hl-dir"), |m| format!("dir {}", yes(m.is_dir()))));
}

fn truncate() {
    clean(&["trunc.txt"]);
    kv("write trunc.txt", unit(fs::write("trunc.txt", b"abcdef")));
    let show = || res(fs::read("trunc.txt"), |b| format!("len {} hex {}", b.len(), hex(&b)));
    let mut f = match OpenOptions::new().read(true).write(true).open("trunc.txt") {
        Ok(f) => f,
        Err(e) => return kv("open trunc.txt", err(&e)),
    };
    kv("set_len 10 (grow)", unit(f.set_len(10)));
    kv("contents", show());
    kv("metadata len", res(f.metadata(), |m| m.len().to_string()));
    kv("set_len 3 (shrink)", unit(f.set_len(3)));
    kv("contents", show());
    kv("seek End(0)", res(f.seek(SeekFrom::End(0)), |p| p.to_string()));
    kv("write gh", unit(f.write_all(b"gh")));
    kv("set_len 2", unit(f.set_len(2)));
    kv("position after set_len", res(f.stream_position(), |p| p.to_string()));
    kv("write Z at old position", unit(f.write_all(b"Z")));
    kv("contents", show());
    kv("set_len 0", unit(f.set_len(0)));
    kv("contents", show());
    drop(f);
    match File::open("input.txt") {
        Ok(ro) => kv("set_len on read-only", unit(ro.set_len(1))),
        Err(e) => kv("open input.txt", err(&e)),
    }
    kv("input.txt", read_text("input.txt"));
    kv("write trunc.txt", unit(fs::write("trunc.txt", b"xyz")));
    kv("open truncate(true) write", unit(OpenOptions::new().write(true).truncate(true).open("trunc.txt")));
    kv("contents", show());
}

fn since_epoch(t: io::Result<SystemTime>) -> String {
    res(t, |t| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        Err(e) => format!("-{}.{:09}", e.duration().as_secs(), e.duration().subsec_nanos()),
    })
}

fn times() {
    clean(&["times.txt", "times-dir"]);
    let a = UNIX_EPOCH + Duration::new(1_234_567_890, 123_456_789);
    let m = UNIX_EPOCH + Duration::new(1_500_000_000, 987_654_321);
    let m2 = UNIX_EPOCH + Duration::new(4_102_444_800, 1); // 2100-01-01, past 2038
    kv("write times.txt", unit(fs::write("times.txt", b"times\n")));
    let f = match OpenOptions::new().write(true).open("times.txt") {
        Ok(f) => f,
        Err(e) => return kv("open times.txt", err(&e)),
    };
    let ft = fs::FileTimes::new().set_accessed(a).set_modified(m);
    kv("set_times accessed+modified", unit(f.set_times(ft)));
    kv("file modified", since_epoch(f.metadata().and_then(|m| m.modified())));
    kv("file accessed", since_epoch(f.metadata().and_then(|m| m.accessed())));
    kv("set_modified 2100", unit(f.set_modified(m2)));
    kv("path modified", since_epoch(fs::metadata("times.txt").and_then(|m| m.modified())));
    kv("path accessed (unchanged)", since_epoch(fs::metadata("times.txt").and_then(|m| m.accessed())));
    let whole = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    kv("set_times accessed only", unit(f.set_times(fs::FileTimes::new().set_accessed(whole))));
    kv("modified (unchanged)", since_epoch(fs::metadata("times.txt").and_then(|m| m.modified())));
    kv("accessed", since_epoch(fs::metadata("times.txt").and_then(|m| m.accessed())));
    kv("set_modified epoch", unit(f.set_modified(UNIX_EPOCH)));
    kv("modified", since_epoch(fs::metadata("times.txt").and_then(|m| m.modified())));
    drop(f);
    match File::open("times.txt") {
        Ok(ro) => kv("set_modified on read-only", unit(ro.set_modified(m))),
        Err(e) => kv("open read-only", err(&e)),
    }
    kv("modified", since_epoch(fs::metadata("times.txt").and_then(|m| m.modified())));
    kv("create_dir times-dir", unit(fs::create_dir("times-dir")));
    match File::open("times-dir") {
        Ok(d) => {
            kv("dir set_modified", unit(d.set_modified(m)));
            kv("dir modified", since_epoch(fs::metadata("times-dir").and_then(|m| m.modified())));
        }
        Err(e) => kv("open times-dir", err(&e)),
    }
    kv("now after 2020", yes(SystemTime::now() > UNIX_EPOCH + Duration::from_secs(1_577_836_800)));
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn renumber() {
    use std::os::fd::IntoRawFd;
    clean(&["rnm-a.txt", "rnm-b.txt"]);
    kv("write rnm-a.txt", unit(fs::write("rnm-a.txt", b"from a\n")));
    kv("write rnm-b.txt", unit(fs::write("rnm-b.txt", b"from b\n")));
    let (fa, mut fb) = match (File::open("rnm-a.txt"), File::open("rnm-b.txt")) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return kv("open", "failed"),
    };
    let ra = fa.into_raw_fd() as u32;
    let rb = fb.as_raw_fd() as u32;
    let r = unsafe { wasi::fd_renumber(ra, rb) };
    kv("fd_renumber a -> b", r.map_or_else(errno, |_| "ok".into()));
    let mut s = String::new();
    kv("read b after", res(fb.read_to_string(&mut s), |_| format!("{s:?}")));
    let r = unsafe { wasi::fd_renumber(ra, rb) };
    kv("fd_renumber a (closed) -> b", r.map_or_else(errno, |_| "ok".into()));
    let r = unsafe { wasi::fd_renumber(99, rb) };
    kv("fd_renumber 99 -> b", r.map_or_else(errno, |_| "ok".into()));
    let r = unsafe { wasi::fd_renumber(rb, rb) };
    kv("fd_renumber b -> b", r.map_or_else(errno, |_| "ok".into()));
    kv("seek b Start(5)", res(fb.seek(SeekFrom::Start(5)), |p| p.to_string()));
    let mut s = String::new();
    kv("read b", res(fb.read_to_string(&mut s), |_| format!("{s:?}")));
    match unsafe { wasi::fd_renumber(rb, 99) } {
        Ok(()) => {
            kv("fd_renumber b -> 99 (not open)", "ok");
            std::mem::forget(fb);
            let mut f99 = unsafe { File::from_raw_fd(99) };
            let mut s = String::new();
            kv("read 99", res(f99.rewind().and_then(|_| f99.read_to_string(&mut s)), |_| format!("{s:?}")));
        }
        Err(e) => kv("fd_renumber b -> 99 (not open)", errno(e)),
    }
    let r = unsafe { wasi::fd_close(99) };
    kv("fd_close 99", r.map_or_else(errno, |_| "ok".into()));
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn renumber() {
    kv("renumber", "unsupported on p2");
}

fn dirfd() {
    clean(&["dd"]);
    kv("create_dir dd", unit(fs::create_dir("dd")));
    kv("write dd/f.txt", unit(fs::write("dd/f.txt", b"in dd\n")));
    let mut d = match File::open("dd") {
        Ok(d) => {
            kv("open dd as File", "ok");
            d
        }
        Err(e) => return kv("open dd as File", err(&e)),
    };
    kv("metadata is_dir", res(d.metadata(), |m| yes(m.is_dir()).to_string()));
    let mut buf = Vec::new();
    kv("read dir as file", res(d.read_to_end(&mut buf), |n| format!("{n} bytes")));
    kv("write dir as file", unit(d.write_all(b"x")));
    kv("seek dir", res(d.seek(SeekFrom::Start(0)), |p| p.to_string()));
    kv("set_len dir", unit(d.set_len(0)));
    kv("sync_all dir", unit(d.sync_all()));
    kv("open dd for writing", unit(OpenOptions::new().write(true).open("dd")));
    kv("File::open dd/", unit(File::open("dd/")));
    kv("File::open input.txt/", unit(File::open("input.txt/")));
    open_at(&d);
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn open_at(d: &File) {
    use wasi::*;
    let dfd = d.as_raw_fd() as u32;
    let rights = RIGHTS_FD_READ | RIGHTS_FD_WRITE | RIGHTS_FD_SEEK | RIGHTS_FD_FILESTAT_GET;
    let open = |path: &str, oflags: Oflags, rights: Rights| unsafe { path_open(dfd, 0, path, oflags, rights, rights, 0) };
    let read_fd = |fd: Fd| {
        let mut f = unsafe { File::from_raw_fd(fd as i32) };
        let mut s = Vec::new();
        res(f.read_to_end(&mut s), |_| text(&s))
    };
    match open("f.txt", 0, rights) {
        Ok(fd) => kv("path_open dd + f.txt", format!("ok, read {}", read_fd(fd))),
        Err(e) => kv("path_open dd + f.txt", errno(e)),
    }
    match open("new.txt", OFLAGS_CREAT | OFLAGS_EXCL, rights) {
        Ok(fd) => {
            let mut f = unsafe { File::from_raw_fd(fd as i32) };
            kv("path_open dd + new.txt (create)", format!("ok, write {}", unit(f.write_all(b"created via dirfd\n"))));
        }
        Err(e) => kv("path_open dd + new.txt (create)", errno(e)),
    }
    kv("read dd/new.txt", read_text("dd/new.txt"));
    match open("new.txt", OFLAGS_CREAT | OFLAGS_EXCL, rights) {
        Ok(_) => kv("path_open dd + new.txt (create excl again)", "ok"),
        Err(e) => kv("path_open dd + new.txt (create excl again)", errno(e)),
    }
    for (path, oflags) in [
        ("../input.txt", 0),
        ("/input.txt", 0),
        ("f.txt", OFLAGS_DIRECTORY),
        ("missing.txt", 0),
        ("", 0),
    ] {
        let r = open(path, oflags, RIGHTS_FD_READ);
        let key = if oflags == OFLAGS_DIRECTORY { format!("path_open dd + {path:?} (directory)") } else { format!("path_open dd + {path:?}") };
        match r {
            Ok(fd) => kv(&key, format!("ok, read {}", read_fd(fd))),
            Err(e) => kv(&key, errno(e)),
        }
    }
    match open(".", OFLAGS_DIRECTORY, RIGHTS_FD_READDIR | RIGHTS_PATH_OPEN) {
        Ok(fd) => {
            kv("path_open dd + \".\" (directory)", "ok");
            let r = unsafe { fd_close(fd) };
            kv("fd_close", r.map_or_else(errno, |_| "ok".into()));
        }
        Err(e) => kv("path_open dd + \".\" (directory)", errno(e)),
    }
    match open("f.txt", 0, RIGHTS_FD_READ) {
        Ok(fd) => {
            let mut f = unsafe { File::from_raw_fd(fd as i32) };
            kv("write to fd opened with read rights only", unit(f.write_all(b"x")));
        }
        Err(e) => kv("path_open dd + f.txt (read rights)", errno(e)),
    }
    kv("read dd/f.txt", read_text("dd/f.txt"));
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn open_at(_d: &File) {
    kv("path_open", "unsupported on p2");
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn poll_oneoff() {
    use wasi::*;
    let clock = |id: Clockid, ns: u64, userdata: u64| Subscription {
        userdata,
        u: SubscriptionU {
            tag: EVENTTYPE_CLOCK.raw(),
            u: SubscriptionUU { clock: SubscriptionClock { id, timeout: ns, precision: 0, flags: 0 } },
        },
    };
    let mut events = [Event { userdata: 0, error: ERRNO_SUCCESS, type_: EVENTTYPE_CLOCK, fd_readwrite: EventFdReadwrite { nbytes: 0, flags: 0 } }; 2];
    let start = Instant::now();
    let subs = [clock(CLOCKID_MONOTONIC, 5_000_000, 42)];
    match unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len()) } {
        Ok(n) => {
            kv("poll_oneoff monotonic 5ms", format!("ok {n} event(s)"));
            let e = &events[0];
            kv("event userdata", e.userdata);
            kv("event type", if e.type_ == EVENTTYPE_CLOCK { "clock" } else { "other" });
            kv("event error", e.error.raw());
            kv("slept at least 5ms", yes(start.elapsed() >= Duration::from_millis(5)));
        }
        Err(e) => kv("poll_oneoff monotonic 5ms", errno(e)),
    }
    let subs = [clock(CLOCKID_MONOTONIC, 3_000_000, 7), clock(CLOCKID_MONOTONIC, 1_000_000_000, 8)];
    match unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len()) } {
        Ok(n) => kv("poll_oneoff 3ms and 1s", format!("ok {n} event(s), first userdata {}", events[0].userdata)),
        Err(e) => kv("poll_oneoff 3ms and 1s", errno(e)),
    }
    let subs = [clock(CLOCKID_REALTIME, 1_000_000, 9)];
    match unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len()) } {
        Ok(n) => kv("poll_oneoff realtime 1ms", format!("ok {n} event(s), error {}", events[0].error.raw())),
        Err(e) => kv("poll_oneoff realtime 1ms", errno(e)),
    }
    match unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 0) } {
        Ok(n) => kv("poll_oneoff no subscriptions", format!("ok {n} event(s)")),
        Err(e) => kv("poll_oneoff no subscriptions", errno(e)),
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn poll_oneoff() {
    kv("poll_oneoff", "unsupported on p2");
}

fn poll() {
    poll_oneoff();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(5));
    let after = Instant::now();
    kv("sleep 5ms slept at least 5ms", yes(after.duration_since(start) >= Duration::from_millis(5)));
    kv("monotonic clock advanced", yes(after > start));
    std::thread::sleep(Duration::ZERO);
    kv("sleep 0", "ok");
    kv("system time after 2020", yes(SystemTime::now() > UNIX_EPOCH + Duration::from_secs(1_577_836_800)));
    kv("system time before 2100", yes(SystemTime::now() < UNIX_EPOCH + Duration::from_secs(4_102_444_800)));
}

fn show_args(args: &[String]) {
    kv("argc", args.len());
    for (i, a) in args.iter().enumerate().skip(1) {
        kv(&format!("argv[{i}]"), format!("{a:?}"));
    }
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    vars.sort();
    kv("env count", vars.len());
    for (k, v) in vars {
        kv(&format!("env {k}"), format!("{v:?}"));
    }
}

fn random() {
    #[cfg(all(target_os = "wasi", target_env = "p1"))]
    {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        let ra = unsafe { wasi::random_get(a.as_mut_ptr(), a.len()) };
        let rb = unsafe { wasi::random_get(b.as_mut_ptr(), b.len()) };
        kv("random_get 32", ra.map_or_else(errno, |_| "ok".into()));
        kv("random_get 32 again", rb.map_or_else(errno, |_| "ok".into()));
        kv("differ", yes(a != b));
        kv("random_get 0", unsafe { wasi::random_get(a.as_mut_ptr(), 0) }.map_or_else(errno, |_| "ok".into()));
    }
    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    {
        kv("random_get", "unsupported on p2");
    }
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    let ra = check(unsafe { libc::getentropy(a.as_mut_ptr().cast(), a.len()) } as isize);
    let rb = check(unsafe { libc::getentropy(b.as_mut_ptr().cast(), b.len()) } as isize);
    kv("getentropy 32", unit(ra));
    kv("getentropy 32 again", unit(rb));
    kv("getentropy differ", yes(a != b));
    use std::hash::{BuildHasher, RandomState};
    let (h1, h2) = (RandomState::new(), RandomState::new());
    let _ = (h1.hash_one(1u8), h2.hash_one(1u8));
    let mut m = std::collections::HashMap::new();
    m.insert("k", 1);
    kv("hashmap RandomState", if m.get("k") == Some(&1) { "ok" } else { "broken" });
}

fn stdin() {
    let mut input = io::stdin().lock();
    let mut buf = Vec::new();
    kv("read to eof", res(input.read_to_end(&mut buf), |n| format!("{n} bytes")));
    kv("content", format!("{:?}", String::from_utf8_lossy(&buf)));
    let mut more = [0u8; 16];
    kv("read again", res(input.read(&mut more), |n| format!("{n} bytes")));
}

fn exit(args: &[String]) {
    let code: i32 = match args.get(2).map(|s| s.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("parity: exit wants an integer");
            std::process::exit(2);
        }
    };
    kv("exiting with", code);
    let _ = io::stdout().flush();
    std::process::exit(code);
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn sockets() {
    use wasi::*;
    let file = match File::open("input.txt") {
        Ok(f) => f,
        Err(e) => return kv("open input.txt", err(&e)),
    };
    for (label, fd) in [("file", file.as_raw_fd() as u32), ("fd 99", 99)] {
        let data = *b"x";
        let ciov = [Ciovec { buf: data.as_ptr(), buf_len: data.len() }];
        let r = unsafe { sock_send(fd, &ciov, 0) };
        kv(&format!("sock_send {label}"), r.map_or_else(errno, |n| format!("ok {n} bytes")));
        let mut buf = [0u8; 8];
        let iov = [Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() }];
        let r = unsafe { sock_recv(fd, &iov, 0) };
        kv(&format!("sock_recv {label}"), r.map_or_else(errno, |(n, _)| format!("ok {n} bytes")));
        let r = unsafe { sock_shutdown(fd, SDFLAGS_RD | SDFLAGS_WR) };
        kv(&format!("sock_shutdown {label}"), r.map_or_else(errno, |_| "ok".into()));
        let r = unsafe { sock_accept(fd, 0) };
        kv(&format!("sock_accept {label}"), r.map_or_else(errno, |_| "ok".into()));
    }
    let mut s = String::new();
    let mut f = file;
    kv("file still readable", res(f.read_to_string(&mut s), |_| format!("{s:?}")));
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn sockets() {
    kv("sockets", "unsupported on p2");
}

fn errors() {
    clean(&["err-dir", "err-empty"]);
    kv("open missing.txt", unit(File::open("missing.txt")));
    kv("read_dir missing", unit(fs::read_dir("missing")));
    kv("remove_file missing.txt", unit(fs::remove_file("missing.txt")));
    kv("remove_dir missing", unit(fs::remove_dir("missing")));
    kv("create_dir err-dir", unit(fs::create_dir("err-dir")));
    kv("create_dir err-dir (existing)", unit(fs::create_dir("err-dir")));
    kv("create_dir input.txt (existing file)", unit(fs::create_dir("input.txt")));
    kv("create_dir missing/sub", unit(fs::create_dir("missing/sub")));
    kv("write err-dir/f.txt", unit(fs::write("err-dir/f.txt", b"f")));
    kv("remove_dir err-dir (non-empty)", unit(fs::remove_dir("err-dir")));
    kv("remove_file err-dir (a dir)", unit(fs::remove_file("err-dir")));
    kv("remove_dir input.txt (a file)", unit(fs::remove_dir("input.txt")));
    kv("open err-dir for writing", unit(OpenOptions::new().write(true).open("err-dir")));
    kv("create err-dir (File::create on a dir)", unit(File::create("err-dir")));
    kv("create_new input.txt", unit(OpenOptions::new().write(true).create_new(true).open("input.txt")));
    kv("read input.txt/x", unit(fs::read("input.txt/x")));
    kv("read_dir input.txt", unit(fs::read_dir("input.txt")));
    kv("open empty path", unit(File::open("")));
    kv("read ../outside", unit(fs::read("../outside")));
    kv("write ../outside", unit(fs::write("../outside", b"escape")));
    kv("create_dir ../outdir", unit(fs::create_dir("../outdir")));
    kv("read_dir ..", unit(fs::read_dir("..")));
    kv("metadata ..", res(fs::metadata(".."), meta));
    kv("read /../input.txt", read_text("/../input.txt"));
    kv("read err-dir/../../input.txt", read_text("err-dir/../../input.txt"));
    kv("remove_dir .", unit(fs::remove_dir(".")));
    kv("remove_dir /", unit(fs::remove_dir("/")));
    kv("create_dir err-empty", unit(fs::create_dir("err-empty")));
    kv("remove_dir err-empty", unit(fs::remove_dir("err-empty")));
    kv("write with NUL in path", unit(fs::write("a\0b", b"x")));
    kv("input.txt intact", read_text("input.txt"));
}
