//! The public tables of docs/job-format.md say what the code does.

use wasmq_spec::codes;

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
