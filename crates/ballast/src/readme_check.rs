//! The README's command lines against the real command line (test only). Every command in a
//! shell code block of README.md that runs `ballast` — `ballast …`, or `cargo run … -- ARGS`,
//! which runs `ballast ARGS` — must parse with [`Cli`]: its subcommands, flags and values as
//! `--help` describes them. It runs in `cargo test --workspace`, so a renamed flag fails CI
//! until the README follows.
//!
//! What counts as a command: backslash continuations are joined, `#` starts a comment, and
//! `&&`, `||`, `;` and `&` separate commands. A `|` in a line that runs `ballast` must pipe
//! into a filter (`grep`, `head`, `jq`, …): the README once wrote `ballast model list | show
//! fraud` to mean "or", which a shell runs as a pipe into a command that does not exist.
//! Inline code in prose (`ballast apply`) is a mention, not a command line, and is not checked.

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::Cli;

/// Shell code blocks: the info strings whose lines are commands.
const SHELL: &[&str] = &["sh", "bash", "shell", "console"];

/// What a `ballast` command may pipe into.
const FILTERS: &[&str] = &[
    "grep", "head", "tail", "jq", "less", "wc", "sort", "uniq", "tee", "cut", "awk", "sed",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    /// `|`, `&&`, `||`, `;`, `&`.
    Op(&'static str),
}

/// Logical lines of the shell blocks: (1-based line where it starts, text with continuations
/// joined).
fn shell_lines(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_shell: Option<bool> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_shell = match in_shell {
                Some(_) => None,
                None => Some(SHELL.contains(&info.trim())),
            };
            continue;
        }
        if in_shell != Some(true) {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                text.push(' ');
                pending = Some((start, text));
            }
            None => {
                text.push_str(line);
                out.push((start, text));
            }
        }
    }
    out.extend(pending);
    out
}

/// Splits a line as a POSIX shell would into words and control operators (quotes, backslash
/// escapes, `#` comments; no expansions).
fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                tokens.extend(word.take().map(Token::Word));
            }
            '#' if word.is_none() => break,
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                if let Some(c) = chars.next() {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            '|' | '&' | ';' => {
                tokens.extend(word.take().map(Token::Word));
                let op = match (c, chars.peek()) {
                    ('|', Some('|')) => "||",
                    ('&', Some('&')) => "&&",
                    ('|', _) => "|",
                    ('&', _) => "&",
                    _ => ";",
                };
                if op.len() == 2 {
                    chars.next();
                }
                tokens.push(Token::Op(op));
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    tokens.extend(word.map(Token::Word));
    Ok(tokens)
}

/// The words of a command without leading `NAME=value` assignments.
fn command_words(words: &[String]) -> &[String] {
    let assignments = words
        .iter()
        .take_while(|w| {
            w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
        })
        .count();
    &words[assignments..]
}

/// The `ballast` arguments a command runs, if it runs `ballast`.
fn ballast_argv(words: &[String]) -> Option<Vec<String>> {
    let words = command_words(words);
    let first = words.first()?;
    if first == "ballast" || first.ends_with("/ballast") {
        return Some(words.to_vec());
    }
    if first == "cargo" && words.get(1).is_some_and(|w| w == "run") {
        let sep = words.iter().position(|w| w == "--")?;
        let mut argv = vec!["ballast".to_string()];
        argv.extend(words[sep + 1..].iter().cloned());
        return Some(argv);
    }
    None
}

/// Checks every `ballast` command in `markdown`'s shell blocks; `Ok` with how many were
/// checked, or every problem as `line N: ...`.
fn check(markdown: &str) -> Result<usize, Vec<String>> {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (line, text) in shell_lines(markdown) {
        let tokens = match tokenize(&text) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("line {line}: {e}: {text}"));
                continue;
            }
        };
        // Pipelines (separated by && || ; &), each a list of commands joined by |.
        let mut pipelines: Vec<Vec<Vec<String>>> = vec![vec![Vec::new()]];
        for t in tokens {
            match t {
                Token::Word(w) => {
                    if let Some(cmd) = pipelines.last_mut().and_then(|p| p.last_mut()) {
                        cmd.push(w);
                    }
                }
                Token::Op("|") => {
                    if let Some(p) = pipelines.last_mut() {
                        p.push(Vec::new());
                    }
                }
                Token::Op(_) => pipelines.push(vec![Vec::new()]),
            }
        }
        for pipeline in &pipelines {
            let runs_ballast = pipeline.iter().any(|c| ballast_argv(c).is_some());
            for (i, cmd) in pipeline.iter().enumerate() {
                if let Some(argv) = ballast_argv(cmd) {
                    checked += 1;
                    if let Err(e) = Cli::try_parse_from(&argv)
                        && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                    {
                        let why = e.to_string();
                        let why = why
                            .lines()
                            .next()
                            .unwrap_or("")
                            .trim_start_matches("error: ");
                        problems.push(format!("line {line}: `{}`: {why}", argv.join(" ")));
                    }
                } else if i > 0 && runs_ballast {
                    let into = command_words(cmd).first().map_or("", String::as_str);
                    if !FILTERS.contains(&into) {
                        problems.push(format!(
                            "line {line}: `|` pipes into `{into}`, which is not a command: write one command per line ({})",
                            text.trim()
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const README: &str = include_str!("../../../README.md");

    #[test]
    fn every_ballast_command_line_in_the_readme_parses() {
        match check(README) {
            // Enough to know the extraction found the README's commands at all.
            Ok(n) => assert!(n >= 20, "only {n} ballast commands found in README.md"),
            Err(problems) => panic!(
                "README.md commands the CLI does not accept:\n{}",
                problems.join("\n")
            ),
        }
    }

    /// The per-model `config.toml` example shows the real defaults: each setting in it parses
    /// to `ModelConfig::default()` unless its comment says "example value" (it once showed
    /// `default_timeout_ms = 250`, and `/config` said `null`).
    #[test]
    fn the_readme_model_config_example_shows_the_real_defaults() {
        use ballast_core::ModelConfig;
        use ballast_core::config::{
            DEFAULT_INSTANCES, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_QUEUE_SIZE,
        };
        let start = README
            .find("```toml\nmax_batch_size = ")
            .expect("the per-model config.toml example");
        let block = &README[start + "```toml\n".len()..];
        let block = &block[..block.find("```").unwrap()];
        let mut checked = 0;
        for line in block.lines() {
            let line = line.trim();
            if line.starts_with("[[") {
                break;
            }
            let Some((setting, comment)) = line.split_once('=').map(|(key, rest)| {
                let (value, comment) = rest.split_once(" #").unwrap_or((rest, ""));
                (format!("{} = {}", key.trim(), value.trim()), comment)
            }) else {
                continue;
            };
            if comment.contains("example value") {
                continue;
            }
            checked += 1;
            let parsed = ModelConfig::from_toml(&setting, "README.md")
                .unwrap_or_else(|e| panic!("{setting}: {}", e.message));
            let mut default = ModelConfig::default();
            if setting.starts_with("max_concurrency") {
                // Derived when unset: the queue plus one batch per engine thread.
                default.max_concurrency =
                    Some(DEFAULT_MAX_QUEUE_SIZE + DEFAULT_MAX_BATCH_SIZE * DEFAULT_INSTANCES);
            }
            assert_eq!(parsed, default, "README.md shows `{setting}` as a default");
        }
        assert!(checked >= 8, "only {checked} settings found in the example");
    }

    #[test]
    fn the_readme_check_refuses_unknown_flags_subcommands_and_or_pipes() {
        let bad = "\
intro, `ballast nonsense` in prose is not checked

```sh
ballast serve --model-repository models --http-prot 8000
ballast model lst
ballast model list | show fraud
ballast rollout start fraud@3 [--plan plan.yaml]
```
";
        let problems = check(bad).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("line 4:"), "{problems:#?}");
        assert!(problems[0].contains("--http-prot"), "{problems:#?}");
        assert!(problems[1].contains("'lst'"), "{problems:#?}");
        assert!(problems[2].contains("pipes into `show`"), "{problems:#?}");
        assert!(problems[3].contains("[--plan"), "{problems:#?}");
    }

    #[test]
    fn the_readme_check_reads_lines_as_a_shell_does() {
        let good = "\
```toml
# ballast serve --no-such-flag   (a TOML comment, not a command)
```

```sh
cargo run --release -- demo --no-serve     # a comment with --no-such-flag
ballast model push models/fraud/3 --name fraud --owner \"risk team\" \\
    --metric auc=0.941 --allow-missing-card
ballast diff ballast.yaml; ballast apply ballast.yaml && ballast events --model fraud
BALLAST_DATA_DIR=/srv/ballast ballast model list --json | jq .
ballast serve --require-signature --trusted-key key.pub.pem
curl -s localhost:8000/metrics | grep ballast_
```
";
        assert_eq!(check(good), Ok(7));
        let continued = "```sh\nballast model show \\\n  fraud --no-such-flag\n```\n";
        let problems = check(continued).unwrap_err();
        assert!(problems[0].starts_with("line 2:"), "{problems:#?}");
    }
}
