//! The configuration reference for operators (docs/configuration.md), made
//! from the definitions rather than written beside them.
//!
//! Each source says one thing once: the keys and their defaults are what
//! `wsreactor print-config` prints for the built-in configuration
//! ([`Config::to_toml`]); a key's meaning is the comment directly above it
//! in `config/wsreactor.toml`, which operators already read and which a test
//! keeps at the defaults; the flags are the command line's own (passed in
//! by it as [`Flag`]s, from clap). Tests fail when a printed key has no
//! comment, when the file documents a key that does not exist, and (in the
//! binary) when docs/configuration.md is not what [`markdown`] makes.

use std::fmt::Write as _;

use super::{Config, API_KEY_VAR, PUBLISH_TOKEN_VAR};

/// The commented configuration file, every key at its default.
pub const COMMENTED: &str = include_str!("../../config/wsreactor.toml");

/// The command that writes docs/configuration.md.
pub const REGENERATE: &str = "cargo run -q -- print-config --reference > docs/configuration.md";

/// A flag of `wsreactor serve`, as the command line describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// How it is written, e.g. `--bind ADDR`.
    pub usage: String,
    /// Its help text; the keys it names (`server.bind`) are the keys it sets.
    pub help: String,
}

/// The environment variables that set keys: the variable, the key, and
/// what it holds. Each may instead name a file, with `_FILE` appended
/// ([`super::secret_from_env`]).
const ENVIRONMENT: [(&str, &str, &str); 4] = [
    (
        PUBLISH_TOKEN_VAR,
        "pubsub.publish_token",
        "The publish token, over the file's; `--publish-token` overrides both.",
    ),
    (
        crate::auth::SECRET_VAR,
        "auth.secret",
        "The HS256 secret of subscriber tokens, over the file's.",
    ),
    (API_KEY_VAR, "api.key", "The server API's key, over the file's."),
    (
        // `pubsub::redis::PASSWORD_VAR`, which only a build with Redis has.
        "WSREACTOR_REDIS_PASSWORD",
        "pubsub.broker",
        "The Redis password, for a broker URL that carries none.",
    ),
];

/// What `config/wsreactor.toml`'s comments say, in the file's order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Comments {
    /// Per section, the paragraphs between its header and its first key.
    intros: Vec<(String, Vec<String>)>,
    /// `(section, key, meaning)`: the comment block directly above the key
    /// (or above `# key = ...`, a key shown commented out), one line.
    keys: Vec<(String, String, String)>,
}

impl Comments {
    fn parse(text: &str) -> Comments {
        let mut comments = Comments::default();
        let mut section = String::new();
        let mut block: Vec<&str> = Vec::new();
        let mut in_intro = false;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                comments.intros.push((section.clone(), Vec::new()));
                block.clear();
                in_intro = true;
            } else if line.is_empty() {
                if in_intro && !block.is_empty() {
                    comments.intros.last_mut().unwrap().1.push(block.join(" "));
                }
                // A block a blank line parts from its key is nobody's.
                block.clear();
            } else if let Some(comment) = line.strip_prefix('#').map(str::trim) {
                if let Some(key) = assigned_key(comment) {
                    comments.keys.push((section.clone(), key.to_owned(), block.join(" ")));
                    block.clear();
                    in_intro = false;
                } else if !comment.is_empty() {
                    block.push(comment);
                }
            } else if let Some(key) = assigned_key(line) {
                comments.keys.push((section.clone(), key.to_owned(), block.join(" ")));
                block.clear();
                in_intro = false;
            }
        }
        comments
    }

    fn meaning(&self, section: &str, key: &str) -> Option<&str> {
        let found = self.keys.iter().find(|(s, k, _)| s == section && k == key);
        found.map(|(_, _, meaning)| meaning.as_str())
    }

    fn intro(&self, section: &str) -> &[String] {
        let found = self.intros.iter().find(|(s, _)| s == section);
        found.map_or(&[], |(_, paragraphs)| paragraphs.as_slice())
    }
}

/// `key` of a `key = value` line.
fn assigned_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    bare.then_some(key)
}

/// Every key print-config can print, as `(section, key)` in its order: the
/// defaults' TOML with the optional keys set, which it leaves out while
/// they are not.
fn printed_keys() -> Vec<(String, String)> {
    let mut config = Config::default();
    config.timeouts.request = Some(config.timeouts.handshake);
    let keys = Comments::parse(&config.to_toml()).keys;
    keys.into_iter().map(|(section, key, _)| (section, key)).collect()
}

/// The keys (`section.key`) that `text` names, in order, each once.
pub fn keys_named(text: &str) -> Vec<String> {
    let keys: Vec<String> = printed_keys().iter().map(|(s, k)| format!("{s}.{k}")).collect();
    let mut named: Vec<String> = Vec::new();
    let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'));
    for word in words.map(|w| w.trim_end_matches('.')) {
        if !named.iter().any(|n| n == word) && keys.iter().any(|k| k == word) {
            named.push(word.to_owned());
        }
    }
    named
}

/// Text for a Markdown table cell or paragraph: what Markdown would take
/// for a table's edge, an HTML tag or emphasis is escaped, outside code
/// spans (inside one, only a table's edge).
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_alphanumeric());
        let special = match c {
            '`' => {
                in_code = !in_code;
                false
            }
            '|' => true,
            '\\' | '<' | '*' => !in_code,
            // Inside a word (max_channels) an underscore is no emphasis.
            '_' => !(in_code || word(i.checked_sub(1)) && word(Some(i + 1))),
            _ => false,
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

const INTRO: &str = "\
The server's configuration: every key with its default and meaning, the
environment variables and the flags that set keys. This page is made from
the definitions (the keys and defaults `wsreactor print-config` prints, the
comments in [`config/wsreactor.toml`](../config/wsreactor.toml), the flags of
`wsreactor serve --help`) and a test fails when it differs from them; do not
edit it, regenerate it:

```sh
cargo run -q -- print-config --reference > docs/configuration.md
```

## Where the configuration comes from

`wsreactor serve` and `wsreactor check-config` put the configuration
together in this order, each step over the one before:

1. The built-in defaults (the default column below).
2. The TOML file `--config PATH` names. There is no search path: without
   `--config` the defaults are the configuration (the Debian package's
   systemd unit passes `--config /etc/wsreactor/wsreactor.toml`). A file may
   set only some keys and may leave out whole sections; what it leaves out
   keeps its default. An unknown key or section is an error, not ignored.
3. Secrets from the [environment](#environment-variables).
4. The [flags](#flags-of-wsreactor-serve) of `wsreactor serve`.

The result is checked once. A configuration refused is one line on stderr
naming the key (`section.key`) and what set it (the file, with the line
where there is one, the variable or the flag), and exit status 2.

- `wsreactor check-config [--config PATH]` checks what `serve` would (the
  file, the environment's secrets, the files the configuration names) and
  starts nothing.
- `wsreactor print-config [--config PATH]` prints the file with every key
  filled in, as TOML, without the environment's secrets; read back, it
  changes nothing.

Durations are strings such as `\"10s\"`, `\"500ms\"`, `\"2m\"` or `\"1h 30m\"`;
sizes are in bytes.
";

/// The configuration reference, in Markdown (docs/configuration.md): the
/// intro, a table per section (key, default, meaning), the environment
/// variables, then `flags`, the flags of `wsreactor serve`.
pub fn markdown(flags: &[Flag]) -> String {
    let comments = Comments::parse(COMMENTED);
    let defaults: toml::Table = Config::default().to_toml().parse().expect("print-config's TOML parses");
    let mut out = String::from("# Configuration reference\n\n");
    out.push_str(INTRO);
    out.push_str("\n## Keys\n");
    let mut last_section = None;
    for (section, key) in &printed_keys() {
        if last_section != Some(section) {
            let _ = write!(out, "\n### `[{section}]`\n\n");
            for paragraph in comments.intro(section) {
                let _ = write!(out, "{}\n\n", escaped(paragraph));
            }
            out.push_str("| key | default | meaning |\n| --- | --- | --- |\n");
            last_section = Some(section);
        }
        let default = defaults.get(section).and_then(|t| t.get(key));
        let default = default.map_or_else(|| "not set".to_owned(), |v| code(&v.to_string()));
        let meaning = comments.meaning(section, key).unwrap_or_default();
        let _ = writeln!(out, "| {} | {default} | {} |", code(key), escaped(meaning));
    }
    out.push_str(
        "\n## Environment variables\n\n\
         Secrets belong here rather than in a file others read or in `ps`.\n\n\
         | variable | key | meaning |\n| --- | --- | --- |\n",
    );
    for (var, key, meaning) in ENVIRONMENT {
        let _ = writeln!(out, "| {} | {} | {} |", code(var), code(key), escaped(meaning));
    }
    out.push_str(
        "\nEach may instead be in a file named by the variable with `_FILE` \
         appended (`WSREACTOR_AUTH_SECRET_FILE`: Docker secrets, systemd's \
         credentials); its final line break is dropped. Both forms set, an \
         empty value or a file that cannot be read stops the start with exit \
         status 2, naming the variable. `RUST_LOG` sets the log level (`info` \
         by default); it sets no key.\n",
    );
    out.push_str(
        "\n## Flags of `wsreactor serve`\n\n\
         Each sets the keys it names, over the file and the environment.\n\n\
         | flag | key | meaning |\n| --- | --- | --- |\n",
    );
    for flag in flags {
        let keys: Vec<String> = keys_named(&flag.help).iter().map(|k| code(k)).collect();
        let keys = if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.join(", ")
        };
        let _ = writeln!(out, "| {} | {keys} | {} |", code(&flag.usage), escaped(&flag.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_key_has_a_meaning_in_the_commented_file() {
        let comments = Comments::parse(COMMENTED);
        let mut undocumented = Vec::new();
        for (section, key) in printed_keys() {
            match comments.meaning(&section, &key) {
                Some(meaning) if !meaning.trim().is_empty() => {}
                Some(_) => undocumented.push(format!("`{section}.{key}` has no comment directly above it")),
                None => undocumented.push(format!("`{section}.{key}` is not in it")),
            }
        }
        assert!(
            undocumented.is_empty(),
            "print-config prints keys config/wsreactor.toml does not document:\n{}\n\
             Add each to its section there, at its default, with a `# ...` comment \
             block directly above it (its meaning in docs/configuration.md); then: {REGENERATE}",
            undocumented.join("\n")
        );
    }

    #[test]
    fn the_commented_file_documents_only_printed_keys() {
        let printed = printed_keys();
        let known = |section: &str, key: &str| printed.iter().any(|(s, k)| s == section && k == key);
        let stale: Vec<String> = Comments::parse(COMMENTED)
            .keys
            .iter()
            .filter(|(section, key, _)| !known(section, key))
            .map(|(section, key, _)| format!("{section}.{key}"))
            .collect();
        assert!(
            stale.is_empty(),
            "config/wsreactor.toml documents keys that do not exist: {stale:?}"
        );
    }

    #[test]
    fn the_reference_has_every_key_with_its_default() {
        let text = markdown(&[]);
        let defaults: toml::Table = Config::default().to_toml().parse().unwrap();
        for (section, keys) in defaults {
            let heading = format!("\n### `[{section}]`\n");
            let table = text
                .split(&heading)
                .nth(1)
                .expect("the section")
                .split("\n#")
                .next()
                .unwrap();
            for (key, value) in keys.as_table().unwrap() {
                let row = format!("\n| `{key}` | {} | ", code(&value.to_string()));
                assert!(table.contains(&row), "{section}.{key}: {row}");
            }
        }
        assert!(
            text.contains("| `request` | not set | "),
            "an optional key unset by default"
        );
    }

    #[test]
    fn the_environment_is_the_variables_the_server_reads() {
        let vars: Vec<&str> = ENVIRONMENT.iter().map(|(var, _, _)| *var).collect();
        #[cfg(feature = "redis")]
        assert!(vars.contains(&crate::pubsub::redis::PASSWORD_VAR));
        assert!(vars.contains(&crate::auth::SECRET_VAR) && vars.contains(&PUBLISH_TOKEN_VAR));
        for (var, key, _) in ENVIRONMENT {
            assert_eq!(keys_named(key), [key], "{var} sets a key that exists");
        }
    }

    #[test]
    fn comments_are_the_block_directly_above_a_key() {
        let text = "# the file\n\n[a]\n# a's intro\n# goes on.\n\n# Parted by a blank line.\n\n\
                    # Meaning of x,\n# two lines.\nx = 1\ny = [\"*\"]\n\n# z, unset:\n# z = \"1s\"\n";
        let comments = Comments::parse(text);
        assert_eq!(comments.intro("a"), ["a's intro goes on.", "Parted by a blank line."]);
        assert_eq!(comments.meaning("a", "x"), Some("Meaning of x, two lines."));
        assert_eq!(
            comments.meaning("a", "y"),
            Some(""),
            "a key right after another has none"
        );
        assert_eq!(comments.meaning("a", "z"), Some("z, unset:"));
    }

    #[test]
    fn keys_are_found_in_help_text() {
        let help = "Worker threads (overrides server.threads; default 0). See tls.key, not tls.";
        assert_eq!(keys_named(help), ["server.threads", "tls.key"]);
        assert!(keys_named("config/wsreactor.toml lists them").is_empty());
    }

    #[test]
    fn markdown_specials_are_escaped() {
        assert_eq!(
            escaped("Bearer <token> | private-*"),
            "Bearer \\<token> \\| private-\\*"
        );
        assert_eq!(escaped("`<a|b>` \"_x\" max_size"), "`<a\\|b>` \"\\_x\" max_size");
    }
}
