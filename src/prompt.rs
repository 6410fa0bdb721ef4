//! The terminal of an interactive review: single-key answers as in `git add -p`, and lines of
//! text (a reason, an edited value) through dialoguer. Everything is drawn on stderr, so stdout
//! stays free for data; nothing here knows about proposals.

use std::io::{self, IsTerminal};

use dialoguer::console::{Key, Term};

/// True when a person can answer: stdin and stderr are both terminals.
pub fn attended() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

pub struct Prompt {
    term: Term,
}

/// What a single key press asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Char(char),
    /// Ctrl-C, Escape, or the end of input: leave.
    Quit,
    Other,
}

impl Prompt {
    pub fn new() -> Prompt {
        Prompt {
            term: Term::stderr(),
        }
    }

    /// The width to lay tables out in: `COLUMNS` when set (as for `ls`), else the terminal's.
    pub fn width(&self) -> u16 {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| *c >= 40)
            .unwrap_or_else(|| self.term.size().1)
    }

    /// Replaces what is on the screen with `text`.
    pub fn screen(&self, text: &str) -> io::Result<()> {
        self.term.clear_screen()?;
        self.term.write_str(text)?;
        self.term.flush()
    }

    pub fn say(&self, text: &str) -> io::Result<()> {
        self.term.write_line(text)
    }

    /// Shows `question` and waits for one key, which is echoed.
    pub fn key(&self, question: &str) -> io::Result<Answer> {
        self.term.write_str(question)?;
        self.term.flush()?;
        let answer = match self.term.read_key() {
            Ok(Key::Char(c)) if !c.is_control() => Answer::Char(c),
            Ok(Key::CtrlC | Key::Escape) => Answer::Quit,
            Ok(_) => Answer::Other,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Answer::Quit,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Answer::Quit,
            Err(e) => return Err(e),
        };
        let echo = match answer {
            Answer::Char(c) => c.to_string(),
            _ => String::new(),
        };
        self.term.write_line(&echo)?;
        Ok(answer)
    }

    /// Asks for a line of text; an empty answer is `None`.
    pub fn line(&self, question: &str) -> io::Result<Option<String>> {
        let text: String = dialoguer::Input::new()
            .with_prompt(question)
            .allow_empty(true)
            .interact_text_on(&self.term)
            .map_err(|dialoguer::Error::IO(e)| e)?;
        Ok(Some(text).filter(|t| !t.trim().is_empty()))
    }
}

impl Default for Prompt {
    fn default() -> Prompt {
        Prompt::new()
    }
}
