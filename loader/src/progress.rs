//! A progress bar on a terminal, silence elsewhere.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub struct Progress {
    on: bool,
}

impl Progress {
    pub fn new(wanted: bool) -> Progress {
        Progress { on: wanted && std::io::stderr().is_terminal() }
    }

    /// A bar over the bytes of one file.
    pub fn file(&self, name: &str, size: u64) -> Bar {
        if !self.on {
            return Bar(None);
        }
        let bar = ProgressBar::new(size);
        let style = ProgressStyle::with_template("{msg:32} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_message(name.to_string());
        Bar(Some(bar))
    }

    pub fn note(&self, message: &str) {
        if self.on {
            eprintln!("{message}");
        }
    }
}

#[derive(Debug)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
    }
}
