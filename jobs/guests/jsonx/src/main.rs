//! jsonx: reads a JSON array of objects on stdin and writes, one per line, the objects
//! whose field matches a regular expression, keeping only the selected fields.
//!
//! Usage: `jsonx [--where FIELD=REGEX] [--select A,B,...]`
use regex::Regex;
use serde_json::{Map, Value};
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter: Option<(String, Regex)> = None;
    let mut select: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--where" => {
                let spec = it.next().unwrap_or_else(|| fail("--where needs FIELD=REGEX"));
                let (field, re) = spec.split_once('=').unwrap_or_else(|| fail("--where needs FIELD=REGEX"));
                let re = Regex::new(re).unwrap_or_else(|e| fail(&format!("bad regex: {e}")));
                filter = Some((field.to_owned(), re));
            }
            "--select" => {
                let list = it.next().unwrap_or_else(|| fail("--select needs A,B,..."));
                select = Some(list.split(',').map(str::to_owned).collect());
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("read stdin");
    let items: Vec<Map<String, Value>> =
        serde_json::from_str(&input).unwrap_or_else(|e| fail(&format!("stdin is not a JSON array of objects: {e}")));
    let mut kept = 0;
    for item in &items {
        if let Some((field, re)) = &filter {
            let text = match item.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => continue,
            };
            if !re.is_match(&text) {
                continue;
            }
        }
        let out: Map<String, Value> = match &select {
            Some(fields) => fields
                .iter()
                .filter_map(|f| item.get(f).map(|v| (f.clone(), v.clone())))
                .collect(),
            None => item.clone(),
        };
        println!("{}", Value::Object(out));
        kept += 1;
    }
    eprintln!("jsonx: kept {kept} of {}", items.len());
}

fn fail(msg: &str) -> ! {
    eprintln!("jsonx: {msg}");
    std::process::exit(2);
}
