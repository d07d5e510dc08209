//! hashbench: a CPU-bound kernel. Hashes MIB mebibytes (default 16) of the byte
//! pattern `i % 251` with sha256, ROUNDS times (default 1) feeding each digest into the
//! next round, and prints the final digest in hex.
use sha2::{Digest, Sha256};

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let data: Vec<u8> = (0..mib * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut digest = [0u8; 32];
    for _ in 0..rounds {
        let mut h = Sha256::new();
        h.update(digest);
        h.update(&data);
        digest = h.finalize().into();
    }
    println!("{}", hex::encode(digest));
}
