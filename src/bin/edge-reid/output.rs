//! Where `run` tells what it sees (and `identify`, always as JSON Lines): JSON Lines to `--events`
//! and to stdout when it is a pipe or a file, readable lines (and a status line every few seconds)
//! when stdout is a terminal; see `--format` and `--quiet`.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use clap::ValueEnum;
use edge_reid::events::{rfc3339, text, Event, EventWriter, Summary};
use edge_reid::pipeline::{Output, Pipeline};

/// What stdout shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable lines on a terminal; JSON Lines otherwise (nothing with --events).
    Auto,
    /// JSON Lines, one event per line.
    Json,
    /// One readable line per event and a status line every few seconds.
    Text,
}

/// Readable lines on stdout, with the status line's clock.
struct TextOut {
    every: Option<Duration>,
    last: Instant,
    before: Summary,
}

/// The event outputs of one run.
pub struct Outputs {
    json: Vec<EventWriter<Box<dyn Write>>>,
    text: Option<TextOut>,
}

impl Outputs {
    /// Opens the outputs: `events` (appended to, JSON Lines) and stdout as `format` and `quiet`
    /// say; the status line every `status_every` seconds on the readable stdout (0: never).
    pub fn open(
        format: Format,
        quiet: bool,
        events: Option<&Path>,
        status_every: f64,
    ) -> Result<Self> {
        let mut json: Vec<EventWriter<Box<dyn Write>>> = Vec::new();
        if let Some(p) = events {
            // Appended to: a restarted service never loses the events it already wrote.
            let file = File::options()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening events file {}", p.display()))?;
            json.push(EventWriter::new(Box::new(BufWriter::new(file))));
        }
        let stdout = match (quiet, format) {
            (true, _) => None,
            (false, Format::Auto) if std::io::stdout().is_terminal() => Some(Format::Text),
            (false, Format::Auto) => events.is_none().then_some(Format::Json),
            (false, f) => Some(f),
        };
        if stdout == Some(Format::Json) {
            json.push(EventWriter::new(Box::new(std::io::stdout().lock())));
        }
        let text = (stdout == Some(Format::Text)).then(|| TextOut {
            every: (status_every > 0.0).then(|| Duration::from_secs_f64(status_every)),
            last: Instant::now(),
            before: Summary::default(),
        });
        Ok(Self { json, text })
    }

    /// Writes one event everywhere.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        for w in &mut self.json {
            w.write(event).context("writing events")?;
        }
        if self.text.is_some() {
            say(&text::line(event))?;
        }
        Ok(())
    }

    /// Writes the events of `outputs`.
    pub fn write_all(&mut self, outputs: &[Output]) -> Result<()> {
        outputs.iter().try_for_each(|o| self.write(&o.event()))
    }

    /// Writes the status line if one is due.
    pub fn status(&mut self, pipeline: &Pipeline) -> Result<()> {
        let Some(t) = &mut self.text else {
            return Ok(());
        };
        let Some(every) = t.every else {
            return Ok(());
        };
        let elapsed = t.last.elapsed();
        if elapsed < every {
            return Ok(());
        }
        let now = pipeline.summary();
        say(&text::status_line(
            &rfc3339(SystemTime::now()),
            elapsed.as_secs_f64(),
            &t.before,
            &now,
            pipeline.tracks_in_view().len(),
        ))?;
        t.last = Instant::now();
        t.before = now;
        Ok(())
    }
}

/// One line on stdout.
fn say(line: &str) -> Result<()> {
    writeln!(std::io::stdout(), "{line}").context("writing to stdout")
}
