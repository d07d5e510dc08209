//! The public tables of docs/job-format.md say what the code does.

use wasmq_spec::{Code, TrapCode, codes};

/// The `code` cells of the table under `heading` in docs/job-format.md.
fn table_codes(heading: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/job-format.md");
    let text = std::fs::read_to_string(path).expect("read docs/job-format.md");
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("docs/job-format.md has no {heading:?} section"));
    text[start + heading.len()..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|row| {
            let cell = row.split('|').nth(1).expect("a first cell").trim();
            cell.trim_matches('`').to_owned()
        })
        .collect()
}

#[test]
fn the_documented_trap_codes_are_the_table_of_the_code() {
    let documented = table_codes("### Trap codes");
    let mut expected: Vec<String> = codes::TRAP_CODES
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    expected.push(codes::TRAP_HOST.to_owned());
    expected.push(codes::TRAP_UNKNOWN_IMPORT.to_owned());
    expected.push(codes::TRAP_OTHER.to_owned());
    assert_eq!(
        documented, expected,
        "docs/job-format.md's trap codes and wasmq_spec::codes::TRAP_CODES (then trap_host, trap_unknown_import, trap_other) must list the same codes in the same order"
    );
    let mut unique = expected.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected.len(), "a trap code is listed twice");
    for (code, meaning) in codes::TRAP_CODES {
        assert!(code.starts_with("trap_"), "{code}");
        assert!(!meaning.is_empty(), "{code} has no meaning");
    }
}

/// The codes named in the last cell of each row of the table under `heading`: the
/// backquoted words outside parentheses.
fn table_last_cell_codes(heading: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/job-format.md");
    let text = std::fs::read_to_string(path).expect("read docs/job-format.md");
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("docs/job-format.md has no {heading:?} section"));
    let mut codes = Vec::new();
    for row in text[start + heading.len()..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cell = row.trim_end().trim_end_matches('|');
        let cell = &cell[cell.rfind('|').expect("a last cell") + 1..];
        let mut depth = 0usize;
        let outside: String = cell
            .chars()
            .filter(|&c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        codes.extend(outside.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    codes
}

#[test]
fn the_documented_codes_are_codes_of_the_table() {
    let documented = table_last_cell_codes("### Statuses and codes");
    assert!(documented.contains(&"ok".to_owned()), "{documented:?}");
    for code in &documented {
        let parsed: Code = code.parse().unwrap_or_else(|e| {
            panic!("docs/job-format.md names a code wasmq_spec::Code lacks: {e}")
        });
        assert!(
            !matches!(parsed, Code::Trap(_)),
            "{code} is a trap code, listed apart"
        );
    }
    // And every code of the table is documented there.
    for code in Code::ALL.iter().filter(|c| !matches!(c, Code::Trap(_))) {
        assert!(
            documented.iter().any(|d| d == code.as_str()),
            "docs/job-format.md's \"Statuses and codes\" does not name {code}"
        );
    }
    let traps: Vec<String> = TrapCode::ALL.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        table_codes("### Trap codes"),
        traps,
        "docs/job-format.md's trap codes and wasmq_spec::TrapCode::ALL must list the same codes in the same order"
    );
}
