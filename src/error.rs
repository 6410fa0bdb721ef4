//! One error type for the whole library. Each variant knows its exit code and, where
//! there is something the user can do about it, a hint.

use std::fmt;
use std::path::PathBuf;

/// A problem found in input, located as `FILE:LINE` so it can be fixed in an editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input rows; nothing was written.
    #[error("{}", render_problems(problems, *omitted))]
    Invalid {
        problems: Vec<Problem>,
        /// Problems found beyond the ones kept, so memory stays bounded on a broken file.
        omitted: u64,
        /// What the user can do, in the words of the command that refused.
        hint: &'static str,
    },
    /// The request itself is wrong (unknown object, bad id, bad option combination).
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    #[error("no crmgate store at {}", path.display())]
    NoStore { path: PathBuf },
    #[error("{} was written by a newer crmgate (store schema {found}, this build knows up to {known})", path.display())]
    NewerStore {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the store is locked by another crmgate process; nothing was changed")]
    Busy,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(String),
}

fn render_problems(problems: &[Problem], omitted: u64) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    if omitted > 0 {
        let more = if omitted == 1 { "problem" } else { "problems" };
        out.push_str(&format!("\n... and {omitted} more {more}"));
    }
    out
}

impl Error {
    pub fn refused(message: impl Into<String>) -> Self {
        Error::Refused {
            message: message.into(),
            hint: None,
        }
    }

    pub fn refused_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code for this error. Usage errors (2) come from the argument
    /// parser, in `cli`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Busy => 75,
            _ => 1,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Invalid { hint, .. } => Some(hint.to_string()),
            Error::Refused { hint, .. } => hint.clone(),
            Error::NoStore { path } => Some(format!(
                "create it with `crmgate init --db {}`, or point --db / CRMGATE_DB at an existing store",
                path.display()
            )),
            Error::NewerStore { .. } => {
                Some("upgrade crmgate; this build will not touch a newer store".into())
            }
            Error::Busy => Some(
                "another process held the write lock past the busy timeout; try again (exit 75)"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A check that may refuse: it holds (with what it found), or it does not, for a reason the
/// caller words into its refusal. A failure of the store is an `Err` around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds<T = ()> {
    Yes(T),
    No(String),
}

/// Problems found while reading input: the first few kept for the message, the rest counted,
/// so a broken million-row file does not fill memory.
#[derive(Debug, Default)]
pub struct Problems {
    kept: Vec<Problem>,
    omitted: u64,
}

impl Problems {
    const KEEP: usize = 50;

    pub fn push(&mut self, file: &str, line: u64, message: String) {
        if self.kept.len() < Self::KEEP {
            self.kept.push(Problem {
                file: file.to_string(),
                line,
                message,
            });
        } else {
            self.omitted += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Orders the kept problems by file (in `files` order) and line, however they were found.
    pub fn sort_by_position(&mut self, files: &[String]) {
        let rank = |p: &Problem| {
            files
                .iter()
                .position(|f| *f == p.file)
                .unwrap_or(usize::MAX)
        };
        self.kept.sort_by_key(|p| (rank(p), p.line));
    }

    /// The error for these problems, with `first` (a file-level problem) leading and `hint`
    /// saying what to do.
    pub fn into_error(mut self, first: Option<Problem>, hint: &'static str) -> Error {
        if let Some(p) = first {
            self.kept.insert(0, p);
        }
        Error::Invalid {
            problems: self.kept,
            omitted: self.omitted,
            hint,
        }
    }
}
