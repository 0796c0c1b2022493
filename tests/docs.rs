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

/// Documented commands no test runs as written, and why (each must still
/// be in its document word for word, so that the list cannot go stale).
const NOT_RUN: [(&str, &str); 5] = [
    (
        "wsreactor load agent --coordinator redis://10.0.0.1:6379",
        "other hosts' addresses: tests/load/distributed.rs runs agents on loopback",
    ),
    (
        "wsreactor load --coordinator redis://10.0.0.1:6379 --agents 4 --mode subscribe \
         --url ws://10.0.0.2:9001/ws/news --connections 100000 --rate 10 --duration 30s --json run.json",
        "other hosts' addresses: tests/load/distributed.rs runs a coordinator on loopback",
    ),
    (
        "wsreactor serve --broker redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster",
        "other hosts' addresses: tests/sentinel.rs starts the same form on loopback",
    ),
    (
        "wsreactor serve --broker redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
        "other hosts' addresses: tests/cluster.rs starts the same form on loopback",
    ),
    (
        "cargo run -q -- print-config --reference > docs/configuration.md",
        "it rebuilds and rewrites the page: the binary's tests compare print-config --reference with it",
    ),
];

/// `text` with its runs of white space (and line continuations) as one space.
fn flat(text: &str) -> String {
    text.replace("\\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every file that runs commands as a test or CI does, flattened.
fn runners() -> String {
    let mut text = std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).unwrap();
    let mut dirs = vec![Path::new(ROOT).join("tests"), Path::new(ROOT).join("contrib/debian")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "sh") && !path.ends_with("tests/docs.rs") {
                let source = std::fs::read_to_string(&path).unwrap_or_default();
                // A Rust string's quotes as the shell sees them.
                text.push_str(&source.replace("\\\"", "\""));
                text.push('\n');
            }
        }
    }
    flat(&text)
}

/// A bench script's command (`[VAR=value ...] bash benches/NAME.sh`): the
/// script. Benches take minutes and are run by hand (their figures are in
/// docs/benchmarks.md); the script must be there and parse.
fn bench_script(command: &str) -> Option<&str> {
    let at = command.find("bash benches/")?;
    let script = command[at + "bash ".len()..].split(' ').next()?;
    let settings = command[..at].trim();
    let assigned = settings.is_empty() || settings.split(' ').next().is_some_and(|w| w.contains('='));
    (assigned && script.ends_with(".sh")).then_some(script)
}

/// The shell commands of `text`'s `sh` blocks, continuation lines joined,
/// comments and a leading `sudo` left out.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in text.split("```sh\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        for line in block.replace("\\\n", " ").lines() {
            let command = flat(line.split(" #").next().unwrap());
            let command = command.strip_prefix("sudo ").unwrap_or(&command);
            if !command.is_empty() {
                out.push(command.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_documented_command_is_run_by_a_test() {
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
    let (mut unrun, mut all) = (Vec::new(), Vec::new());
    for file in documents() {
        let mut text = std::fs::read_to_string(&file).unwrap();
        if file.ends_with("README.md") {
            // Less the sections a test runs from the README itself.
            text = text
                .split("\n## ")
                .filter(|part| !RUN_FROM_THE_README.iter().any(|(s, _)| part.starts_with(&s[3..])))
                .collect::<Vec<_>>()
                .join("\n## ");
        }
        let name = file.strip_prefix(ROOT).unwrap().display().to_string();
        for command in commands(&text) {
            if let Some(script) = bench_script(&command) {
                let parses = std::process::Command::new("bash")
                    .args(["-n", script])
                    .current_dir(ROOT)
                    .status()
                    .is_ok_and(|s| s.success());
                if !parses {
                    unrun.push(format!("{name}: {command} (the script is missing or does not parse)"));
                }
            } else if !runners.contains(&command) && !NOT_RUN.iter().any(|(c, _)| flat(c) == command) {
                unrun.push(format!("{name}: {command}"));
            }
            all.push(command);
        }
    }
    assert!(
        unrun.is_empty(),
        "documented commands no test or CI runs as written:\n{}",
        unrun.join("\n")
    );
    for (command, why) in NOT_RUN {
        assert!(
            all.contains(&flat(command)),
            "NOT_RUN lists `{command}` ({why}), which no document says now"
        );
    }
}

#[test]
fn commands_are_read_as_a_shell_would_run_them() {
    let text = "x\n```sh\nsudo bash benches/a.sh   # note\nwsreactor load --url u \\\n    --rate 5\n```\n";
    assert_eq!(commands(text), ["bash benches/a.sh", "wsreactor load --url u --rate 5"]);
    assert_eq!(bench_script("ROUNDS=3 bash benches/a.sh"), Some("benches/a.sh"));
    assert_eq!(bench_script("bash tests/run-all.sh"), None);
    assert_eq!(
        bench_script("W=\"a b\" bash benches/c/run.sh"),
        Some("benches/c/run.sh")
    );
}

/// The code blocks (other than shell and plain text) of the documents,
/// each with the test that runs it as written: (document, language,
/// section it is under, test).
const RUN_CODE: [(&str, &str, &str, &str); 8] = [
    ("README.md", "js", "Push in five minutes", "tests/browser/quickstart.rs"),
    ("README.md", "rust,no_run", "The library in ten lines", "src/lib.rs"),
    (
        "docs/operating.md",
        "nginx",
        "At a proxy",
        "tests/facing/nginx_documented.rs",
    ),
    (
        "docs/operating.md",
        "python",
        "Subscriber tokens",
        "tests/facing/documented_tokens.rs",
    ),
    (
        "docs/operating.md",
        "js",
        "Subscriber tokens",
        "tests/facing/documented_tokens.rs",
    ),
    (
        "docs/protocols.md",
        "text",
        "Many channels on one connection",
        "tests/push/documented.rs",
    ),
    (
        "docs/protocols.md",
        "text",
        "Several channels on an event stream or a poll",
        "tests/push/documented.rs",
    ),
    (
        "docs/protocols.md",
        "js",
        "The JavaScript client",
        "tests/browser/documented.rs",
    ),
];

#[test]
fn every_code_block_is_run_by_a_test() {
    let mut unrun = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(ROOT).unwrap().display().to_string();
        let mut section = String::new();
        let mut fenced = false;
        for line in text.lines() {
            if let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#').trim()) {
                if !fenced {
                    section = heading.to_owned();
                }
            }
            let Some(lang) = line.trim_start().strip_prefix("```") else {
                continue;
            };
            fenced = !fenced;
            // Shell is the commands' test's; plain text and bare blocks are
            // diagrams and output.
            if !fenced || lang.is_empty() || lang == "sh" || (lang == "text" && name != "docs/protocols.md") {
                continue;
            }
            let run = RUN_CODE
                .iter()
                .find(|(doc, l, s, _)| *doc == name && *l == lang && *s == section);
            match run {
                Some((_, _, s, test)) => {
                    let runner = std::fs::read_to_string(Path::new(ROOT).join(test)).unwrap();
                    // The crate's doc tests take the README whole.
                    let whole = *test == "src/lib.rs" && runner.contains("include_str!(\"../README.md\")");
                    if !runner.contains(s) && !whole {
                        unrun.push(format!("{name}: {lang} under {s:?}: {test} does not read it"));
                    }
                }
                None => unrun.push(format!("{name}: a {lang} block under {section:?}")),
            }
        }
    }
    assert!(
        unrun.is_empty(),
        "code blocks no test runs as written:\n{}",
        unrun.join("\n")
    );
}
