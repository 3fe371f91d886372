//! `--config FILE.toml`: the options of `run` in a file, one key per long option (`max-distance =
//! 1.2`, `synthetic = true`, `roi = ["10,20,64,128"]`). Options given on the command line win
//! over the file's, as do options that cannot go with one of the file's (`--input` over a file's
//! `device`). Every value goes through the option's own parser, so a file is held to the rules of
//! the command line; an unknown key or a wrong value is an error naming the file, the line and
//! the key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use toml::{Spanned, Value};

/// Options of `run` that a file cannot hold.
const NOT_IN_FILE: &[&str] = &["config"];

/// One option of the file.
struct Entry {
    key: String,
    /// The option as command-line words (`--fps`, `15`).
    words: Vec<OsString>,
}

/// A checked config file.
pub struct Config {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Config {
    /// Reads `path` and checks it against `run`, the `run` command's arguments: every key, every
    /// value, and the options together (two that cannot go together are refused, as on the
    /// command line).
    pub fn load(path: &Path, run: &clap::Command) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let table: BTreeMap<String, Spanned<Value>> =
            toml::from_str(&text).map_err(|e| anyhow!("config {}: {e}", path.display()))?;
        let mut lines: Vec<(usize, &String, &Spanned<Value>)> = table
            .iter()
            .map(|(key, value)| (line_of(&text, value.span().start), key, value))
            .collect();
        lines.sort_by_key(|&(line, _, _)| line);
        let entries = lines
            .into_iter()
            .map(|(line, key, value)| {
                words(run, key, value.get_ref())
                    .map(|words| Entry {
                        key: key.clone(),
                        words,
                    })
                    .map_err(|why| anyhow!("config {} line {line}: {key}: {why}", path.display()))
            })
            .collect::<Result<_>>()?;
        let config = Self {
            path: path.to_path_buf(),
            entries,
        };
        parse(
            run,
            config.entries.iter().flat_map(|e| e.words.iter().cloned()),
        )
        .map_err(|(_, why)| anyhow!("config {}: {why}", config.path.display()))?;
        Ok(config)
    }

    /// How many options the file sets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `args` (a whole command line, program name first, for `run`) with the file's options
    /// added, except those that `given` (the command line's matches for `run`) sets itself or
    /// overrides by giving an option they cannot go with.
    pub fn merge(
        &self,
        mut args: Vec<OsString>,
        run: &clap::Command,
        given: &ArgMatches,
    ) -> Vec<OsString> {
        let mut run = run.clone();
        run.build();
        let on_command_line =
            |arg: &Arg| given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine);
        let conflict = |a: &Arg, b: &Arg| {
            let with = |x: &Arg, y: &Arg| {
                run.get_arg_conflicts_with(x)
                    .iter()
                    .any(|c| c.get_id() == y.get_id())
            };
            with(a, b) || with(b, a)
        };
        let set: Vec<&Arg> = run.get_arguments().filter(|a| on_command_line(a)).collect();
        for entry in &self.entries {
            let Some(arg) = option(&run, &entry.key) else {
                continue;
            };
            let overridden = set
                .iter()
                .any(|g| g.get_id() == arg.get_id() || conflict(g, arg));
            if !overridden {
                args.extend(entry.words.iter().cloned());
            }
        }
        args
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The option of `run` named `key` (its long name) that a file may set.
fn option<'a>(run: &'a clap::Command, key: &str) -> Option<&'a Arg> {
    run.get_arguments().find(|a| {
        a.get_long() == Some(key)
            && !NOT_IN_FILE.contains(&key)
            && matches!(
                a.get_action(),
                ArgAction::Set | ArgAction::Append | ArgAction::SetTrue
            )
    })
}

/// `key = value` as command-line words, checked by the option's parser.
fn words(run: &clap::Command, key: &str, value: &Value) -> Result<Vec<OsString>, String> {
    let arg = option(run, key).ok_or_else(|| {
        "not an option of `run` (the keys are its long options without the dashes: \
         edge-reid run --help)"
            .to_string()
    })?;
    let flag = OsString::from(format!("--{key}"));
    let words = match (arg.get_action(), value) {
        (ArgAction::SetTrue, Value::Boolean(true)) => vec![flag],
        (ArgAction::SetTrue, Value::Boolean(false)) => Vec::new(),
        (ArgAction::SetTrue, other) => {
            return Err(format!(
                "expected true or false, found {}",
                other.type_str()
            ))
        }
        (ArgAction::Append, Value::Array(items)) => {
            let mut words = Vec::new();
            for item in items {
                words.push(flag.clone());
                words.push(scalar(item)?.into());
            }
            words
        }
        (_, v) => vec![flag, scalar(v)?.into()],
    };
    // One key alone may lack another it needs (`mqtt-ca` without `mqtt`): the file's options
    // together are checked for that.
    match parse(run, words.iter().cloned()) {
        Err((ErrorKind::MissingRequiredArgument, _)) => {}
        other => other.map_err(|(_, why)| why)?,
    }
    Ok(words)
}

/// A string or number as the command line would have it.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        other => Err(format!(
            "expected a string or a number, found {}",
            other.type_str()
        )),
    }
}

/// Parses `words` as `run`'s arguments; clap's message (first line, no `error:`) if they fail.
fn parse(
    run: &clap::Command,
    words: impl Iterator<Item = OsString>,
) -> Result<(), (ErrorKind, String)> {
    run.clone()
        .try_get_matches_from(std::iter::once(OsString::from("run")).chain(words))
        .map(drop)
        .map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // clap puts what is missing on the next line.
            let first = match message.lines().nth(1).map(str::trim) {
                Some(next) if first.ends_with(':') && !next.is_empty() => format!("{first} {next}"),
                _ => first.to_string(),
            };
            (e.kind(), first)
        })
}
