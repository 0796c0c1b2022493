//! The README's design diagrams and the crate documentation's are the same
//! text: a change to one that forgets the other fails here.

/// The fenced blocks under the README's "What a message passes through".
fn readme_flows() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### What a message passes through")
        .nth(1)
        .expect("the section");
    let section = section.split("\n#").next().unwrap();
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim().to_string())
        .collect()
}

/// `src/lib.rs`'s `//!` text.
fn crate_docs() -> String {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_flows_are_the_crate_docs_flows() {
    let flows = readme_flows();
    assert_eq!(flows.len(), 2, "an echoed and a published message");
    let docs = crate_docs();
    for flow in flows {
        assert!(docs.contains(&flow), "src/lib.rs lacks:\n{flow}");
    }
}
