//! Everything printed: tables, colour, and the neutralising of untrusted text. Data goes to
//! stdout, talk (progress, notes, errors) to stderr.

use std::borrow::Cow;
use std::io::IsTerminal;

use comfy_table::{ContentArrangement, Table, presets};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub color: bool,
    /// stderr is a terminal: progress bars may be drawn.
    pub interactive_err: bool,
    /// How wide tables may be: `$COLUMNS`, else the terminal's width, else 80 (piped output
    /// too, so `show 42 | head` stays readable).
    pub width: u16,
}

impl Ui {
    pub fn new(json: bool, quiet: bool, color: ColorMode) -> Ui {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => std::io::stdout().is_terminal() && !no_color_env,
        };
        Ui {
            json,
            quiet,
            color,
            interactive_err: std::io::stderr().is_terminal(),
            width: width(),
        }
    }

    /// A note to the user on stderr, unless `--quiet`; each of its lines neutralised by [`safe`].
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", safe_lines(msg.as_ref()));
        }
    }

    /// The one way an error reaches the terminal: `error: MESSAGE`, a `caused by:` line per cause,
    /// and `hint: HINT`, every line neutralised by [`safe`] (always, even with `--quiet`).
    pub fn error(&self, message: &str, causes: &[String], hint: Option<&str>) {
        use std::io::Write;
        let label = if self.color {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{label} {}", safe_lines(message));
        for cause in causes {
            let _ = writeln!(err, "caused by: {}", safe_lines(cause));
        }
        if let Some(h) = hint {
            let _ = writeln!(err, "hint: {}", safe_lines(h));
        }
    }

    pub fn heading(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A progress bar on stderr out of `total` (`{bar}` in `template` is the bar itself), or
    /// `None` where no one would see one: not a terminal, `--quiet` or `--json`.
    pub fn progress(&self, total: u64, template: &str) -> Option<indicatif::ProgressBar> {
        if self.quiet || self.json || !self.interactive_err {
            return None;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Some(bar)
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !self.color {
            t.force_no_tty();
        }
        t.set_width(self.width);
        t
    }
}

/// `$COLUMNS` when it is a number, else the terminal's width, else 80.
fn width() -> u16 {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok());
    columns
        .filter(|&c: &u16| c >= 20)
        .or_else(|| Table::new().width())
        .unwrap_or(80)
}

/// `n` and the noun that fits it: `1 proposal`, `2 proposals`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// When human output is coloured; `Auto` colours a terminal unless NO_COLOR is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

/// Makes untrusted text safe to print on a terminal: control characters (ESC, BEL, C1, DEL...),
/// line and paragraph separators, format characters (zero-width, direction marks and
/// overrides, tags...) and the other default-ignorable characters a terminal draws as nothing
/// (Hangul fillers, Mongolian vowel separator...) are shown as `\u{..}` instead of acting.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`safe`] line by line: text's own line breaks stay, nothing inside a line can act.
pub fn safe_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.split('\n').map(safe).collect::<Vec<_>>().join("\n"))
}

/// By Unicode general category (the `unicode-properties` tables): Cc, Cf, Zl, Zp; then the
/// default-ignorable code points of other categories, except the variation selectors
/// U+FE00..FE0F that emoji need.
fn needs_escape(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator
    ) || matches!(c as u32,
        0x034F            // combining grapheme joiner
        | 0x115F | 0x1160 // Hangul choseong and jungseong fillers
        | 0x17B4 | 0x17B5 // Khmer inherent vowels
        | 0x180B..=0x180F // Mongolian variation selectors and vowel separator
        | 0x2065          // reserved among the invisible operators
        | 0x3164          // Hangul filler
        | 0xFFA0          // halfwidth Hangul filler
        | 0xE0000..=0xE0FFF // tags and variation selectors supplement
    )
}

/// The one builder of every CSV crmgate writes (exports, audit exports, rejects files, import's
/// own proposals): RFC 4180 quoting, `\n` line ends. Cells are written as given; a CSV meant for
/// people passes each through [`sheet_cell`] first.
pub fn csv_writer<W: std::io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new().from_writer(out)
}

/// A cell of a spreadsheet-safe CSV (audit export, `export --spreadsheet-safe`, rejects files).
/// A cell a spreadsheet would evaluate as a formula, or trim into one, gets a leading `'`: it
/// starts with `= + - @`, their full-width forms `＝ ＋ － ＠`, a space, a tab or a line break.
/// A cell that already starts with `'` gets one too, so the escape is reversible: reading back,
/// drop one leading `'` ([`formula_unescape`]). Control characters other than tab and line
/// breaks (ESC, NUL, BEL, DEL, C1) are written as `\u{..}`, as on the terminal: no CSV reader
/// or spreadsheet keeps them, and `cat` would run them.
pub fn sheet_cell(s: &str) -> Cow<'_, str> {
    let inert = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    let s: Cow<'_, str> = if s.chars().any(inert) {
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            if inert(c) {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    };
    match s.chars().next() {
        Some(
            '=' | '+' | '-' | '@' | '＝' | '＋' | '－' | '＠' | ' ' | '\t' | '\r' | '\n' | '\'',
        ) => Cow::Owned(format!("'{s}")),
        _ => s,
    }
}

/// The inverse of [`sheet_cell`]'s leading `'`.
pub fn formula_unescape(s: &str) -> &str {
    s.strip_prefix('\'').unwrap_or(s)
}

/// A merge's records' changes since it was proposed, a line each ("changed since proposed:
/// c-1 title (empty) → CTO"), values sanitised; a last note when something outside crmgate
/// changed them too.
pub fn since_proposed_lines(s: &crate::apply::SinceProposed) -> Vec<String> {
    let value = |v: &serde_json::Value| {
        let text = match v {
            serde_json::Value::Null => return "(empty)".to_string(),
            serde_json::Value::String(t) if t.is_empty() => return "(empty)".to_string(),
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        safe(&text).into_owned()
    };
    let mut lines: Vec<String> = s
        .fields
        .iter()
        .map(|f| {
            format!(
                "changed since proposed: {} {} {} → {}",
                safe(&f.record),
                safe(&f.field),
                value(&f.then),
                value(&f.now)
            )
        })
        .collect();
    if !s.complete {
        lines.push(
            "note: these records also changed outside crmgate since the merge was proposed; the change log cannot say how"
                .to_string(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_never_reach_the_terminal() {
        assert_eq!(safe("plain"), "plain");
        assert_eq!(safe("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(safe("bell\x07"), "bell\\u{7}");
        assert_eq!(safe("evil\u{202e}gnp.exe"), "evil\\u{202e}gnp.exe");
        assert_eq!(safe("line\nbreak"), "line\\u{a}break");
        assert_eq!(safe("\u{9b}31m"), "\\u{9b}31m");
    }

    /// Characters a terminal draws as nothing, or that move or break what follows.
    const INVISIBLE: &[char] = &[
        '\u{61c}',
        '\u{2028}',
        '\u{2029}',
        '\u{e0000}',
        '\u{e0001}',
        '\u{e0020}',
        '\u{e0041}',
        '\u{e007f}',
        '\u{3164}',
        '\u{115f}',
        '\u{180e}',
        '\u{200b}',
        '\u{202e}',
        '\u{2066}',
        '\u{feff}',
        '\u{ad}',
        '\u{ffa0}',
        '\u{1160}',
    ];

    #[test]
    fn invisible_and_line_breaking_characters_are_shown_not_drawn() {
        for &c in INVISIBLE {
            let s = format!("a{c}b");
            assert_eq!(
                safe(&s),
                format!("a\\u{{{:x}}}b", c as u32),
                "{:x}",
                c as u32
            );
        }
        for kept in ["Zoë", "東京", "❤\u{fe0f}", "O'Brien", "a b"] {
            assert_eq!(safe(kept), kept);
        }
        assert_eq!(
            safe_lines("one\u{1b}\ntwo\u{2028}"),
            "one\\u{1b}\ntwo\\u{2028}"
        );
    }

    #[test]
    fn formulas_are_neutralised() {
        for s in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\nx",
            " =1+1",
            "＝1+1",
            "＋1",
            "－1",
            "＠SUM(A1)",
        ] {
            assert_eq!(sheet_cell(s), format!("'{s}"));
        }
        assert_eq!(sheet_cell("Acme"), "Acme");
        assert_eq!(sheet_cell("a\x1b[2Jb\0"), "a\\u{1b}[2Jb\\u{0}");
        assert_eq!(sheet_cell("two\nlines"), "two\nlines");
        for s in ["=1+1", "'quoted", "''", "plain", "-5", "", " x", "＝x"] {
            assert_eq!(formula_unescape(&sheet_cell(s)), s, "round trip of {s:?}");
        }
    }
}
