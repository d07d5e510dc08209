//! wordcount: counts lines, words and bytes of its input files (default
//! `/work/input.txt`), prints a summary, and writes `/work/counts.json` with the totals
//! and the ten most frequent words.
use std::collections::HashMap;
use std::fmt::Write as _;

fn main() {
    let mut files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        files.push("/work/input.txt".to_owned());
    }
    let (mut lines, mut words, mut bytes) = (0usize, 0usize, 0usize);
    let mut freq: HashMap<String, usize> = HashMap::new();
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("wordcount: {f}: {e}");
                std::process::exit(2);
            }
        };
        bytes += text.len();
        lines += text.lines().count();
        for w in text.split_whitespace() {
            words += 1;
            let w: String = w
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            if !w.is_empty() {
                *freq.entry(w).or_default() += 1;
            }
        }
    }
    let mut top: Vec<(String, usize)> = freq.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    let mut json = format!("{{\"lines\":{lines},\"words\":{words},\"bytes\":{bytes},\"top\":[");
    for (i, (w, n)) in top.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(json, "{sep}[\"{w}\",{n}]").unwrap();
    }
    json.push_str("]}\n");
    std::fs::write("/work/counts.json", &json).expect("write /work/counts.json");
    println!("{lines} lines, {words} words, {bytes} bytes");
}
