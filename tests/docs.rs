//! The documents hold together: the architecture's diagrams and the crate
//! documentation's are the same text; every link between the README and
//! docs/ (and to the repository's files) resolves, anchors included; the
//! README stays short.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The fenced blocks under docs/architecture.md's "What a message passes through".
fn readme_flows() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md")).unwrap();
    let section = readme
        .split("## What a message passes through")
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

/// The README and every document under docs/.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A heading's anchor as GitHub makes it: lower case, punctuation but
/// hyphens dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A markdown text without its fenced blocks: its lines, numbered.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            if l.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .map(|(i, l)| (i + 1, l))
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter_map(|(_, l)| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
        })
        .map(slug)
        .collect()
}

/// Every `[text](target)` of a line (not in inline code).
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'`' => in_code = !in_code,
            b']' if !in_code && bytes.get(i + 1) == Some(&b'(') => {
                if let Some(end) = line[i + 2..].find(')') {
                    out.push(line[i + 2..i + 2 + end].to_owned());
                    i += 2 + end;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[test]
fn every_link_between_the_documents_resolves() {
    let mut broken = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for (n, line) in prose(&text) {
            for target in links(line) {
                if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = target
                    .split_once('#')
                    .map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
                let resolved = if path.is_empty() { file.clone() } else { dir.join(path) };
                let here = format!("{}:{n}: ({target})", file.strip_prefix(ROOT).unwrap().display());
                if !resolved.exists() {
                    broken.push(format!("{here}: no such file"));
                    continue;
                }
                if let Some(anchor) = anchor {
                    let target_text = std::fs::read_to_string(&resolved).unwrap_or_default();
                    if !anchors(&target_text).contains(anchor) {
                        broken.push(format!("{here}: no heading #{anchor} there"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_short_and_leads_to_every_document() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 300,
        "the README has {lines} lines: what is not for a newcomer goes to docs/"
    );
    for doc in documents().iter().skip(1) {
        let name = format!("docs/{}", doc.file_name().unwrap().to_string_lossy());
        assert!(
            readme.contains(&format!("]({name})")),
            "the README's table does not lead to {name}"
        );
    }
}

#[test]
fn the_link_checker_finds_what_is_broken() {
    assert_eq!(
        slug("Slow readers and reconnect storms, against nchan (issue 29)"),
        "slow-readers-and-reconnect-storms-against-nchan-issue-29"
    );
    assert_eq!(slug("`[server]`"), "server");
    assert_eq!(links("see [a](b.md#c) and `[x](y)` or [d](#e)"), ["b.md#c", "#e"]);
    assert!(anchors("# Title\n```\n# not a heading\n```\n## Two words\n").contains("two-words"));
    assert!(!anchors("```\n# not a heading\n```\n").contains("not-a-heading"));
}

/// The README's sections whose snippets a test reads from the README and
/// runs as written, and that test.
const RUN_FROM_THE_README: [(&str, &str); 2] = [
    ("## Push in five minutes", "tests/browser/quickstart.rs"),
    ("## The load tool in one minute", "tests/load/readme.rs"),
];

/// Every file that runs commands as a test or CI does.
fn runners() -> String {
    let mut text = String::new();
    let mut dirs = vec![Path::new(ROOT).join("tests"), Path::new(ROOT).join("contrib/debian")];
    text.push_str(&std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).unwrap());
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "sh") && !path.ends_with("tests/docs.rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

#[test]
fn every_readme_command_is_run_by_a_test() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for (section, test) in RUN_FROM_THE_README {
        let runner = std::fs::read_to_string(Path::new(ROOT).join(test)).unwrap();
        assert!(
            readme.contains(&format!("\n{section}\n")),
            "the README lost {section:?}"
        );
        assert!(
            runner.contains(section.trim_start_matches("## ")),
            "{test} does not read {section:?}"
        );
    }
    let runners = runners();
    let mut unrun = Vec::new();
    // The sections' text, without those that a test runs from the README.
    let mut rest = String::new();
    for part in readme.split("\n## ").skip(1) {
        if !RUN_FROM_THE_README.iter().any(|(s, _)| part.starts_with(&s[3..])) {
            rest.push_str(part);
        }
    }
    for block in rest.split("```sh\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        for command in block.replace("\\\n", " ").lines() {
            let command = command.split(" #").next().unwrap().trim();
            let command = command.strip_prefix("sudo ").unwrap_or(command);
            if !command.is_empty() && !runners.contains(command) {
                unrun.push(command.to_owned());
            }
        }
    }
    assert!(
        unrun.is_empty(),
        "README commands no test or CI runs as written:\n{}",
        unrun.join("\n")
    );
}
