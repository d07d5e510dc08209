//! primes: a WASI reactor whose every job needs a large table, worth pre-initialising.
//!
//! `run` (the job's `invoke`) prints, for each argument N, how many primes there are up to
//! N, from a sieve of the numbers up to 50,000,000 that it builds first, unless
//! `wizer.initialize` (the wizer convention, for `wasmq snapshot`) built it already. Exit
//! status 0, or 2 for an argument that is not a number up to the sieve's limit. A job that
//! builds the sieve says so on stderr.

use std::sync::OnceLock;

/// The sieve covers 0..=LIMIT.
const LIMIT: usize = 50_000_000;

/// Bit i set: the odd number 2i + 1 is prime.
static SIEVE: OnceLock<Vec<u64>> = OnceLock::new();

fn build() -> Vec<u64> {
    let odd = LIMIT / 2 + 1;
    let mut bits = vec![u64::MAX; odd.div_ceil(64)];
    bits[0] &= !1; // 1 is not prime
    let mut i = 1;
    while (2 * i + 1) * (2 * i + 1) <= LIMIT {
        if bits[i / 64] >> (i % 64) & 1 == 1 {
            let p = 2 * i + 1;
            let mut m = p * p / 2;
            while m < odd {
                bits[m / 64] &= !(1 << (m % 64));
                m += p;
            }
        }
        i += 1;
    }
    bits
}

/// Primes up to `n`.
fn count(bits: &[u64], n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    let odd = (n - 1) / 2 + 1; // odd numbers 1, 3, ..., up to n
    let full = odd / 64;
    let mut c: usize = bits[..full].iter().map(|w| w.count_ones() as usize).sum();
    if odd % 64 != 0 {
        c += (bits[full] & ((1u64 << (odd % 64)) - 1)).count_ones() as usize;
    }
    c + 1 // and 2
}

/// Builds the sieve once, for a snapshot to keep.
#[unsafe(export_name = "wizer.initialize")]
pub extern "C" fn initialize() {
    SIEVE.get_or_init(build);
}

/// The job's entry point.
#[unsafe(no_mangle)]
pub extern "C" fn run() -> i32 {
    let bits = SIEVE.get_or_init(|| {
        eprintln!("primes: building the sieve");
        build()
    });
    for arg in std::env::args().skip(1) {
        match arg.parse::<usize>() {
            Ok(n) if n <= LIMIT => println!("{n} {}", count(bits, n)),
            _ => {
                eprintln!("primes: {arg:?} is not a number up to {LIMIT}");
                return 2;
            }
        }
    }
    0
}
