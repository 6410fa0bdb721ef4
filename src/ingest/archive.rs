//! Moving the files a committed propose run read out of the inbox, so that a cron job does not
//! read them again: into the archive directory, or its `failed/` for a file set aside whole.
//! A file already in the archive is never overwritten: the newcomer gets a numbered name.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::Input;
use super::proposals::Report;

/// Where files set aside whole go, under the archive directory.
pub const FAILED_DIR: &str = "failed";

/// Moves each file of `inputs` (not stdin, not embedded data) into `dir`, noting where on its
/// line of `report`, or why not in `report.not_archived`.
pub(super) fn archive(inputs: &[Input], report: &mut Report, dir: &Path) {
    for (input, file) in inputs.iter().zip(report.files.iter_mut()) {
        if input.arg == "-" || input.embedded.is_some() {
            continue;
        }
        let to_dir = match file.set_aside {
            Some(_) => dir.join(FAILED_DIR),
            None => dir.to_path_buf(),
        };
        match move_into(Path::new(&input.arg), &to_dir) {
            Ok(to) => file.archived_to = Some(to.display().to_string()),
            Err(e) => report
                .not_archived
                .push(format!("{}: {e}", input.display_name())),
        }
    }
}

/// Moves `from` into `dir` (created if missing) under its own name, or the first free
/// `NAME-1.EXT`, `NAME-2.EXT`, …; returns where it went.
fn move_into(from: &Path, dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let name = from
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?;
    let stem = Path::new(name)
        .file_stem()
        .unwrap_or(name)
        .to_string_lossy()
        .into_owned();
    let ext = Path::new(name)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    for n in 0u32.. {
        let to = match n {
            0 => dir.join(name),
            n => dir.join(format!("{stem}-{n}{ext}")),
        };
        match place(from, &to) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(()) => {
                fs::remove_file(from)?;
                return Ok(to);
            }
        }
    }
    unreachable!("some numbered name is free")
}

/// Puts a copy of `from` at `to`, failing with `AlreadyExists` rather than replacing a file:
/// a hard link where it can (same file system), else a copy into a file created new.
fn place(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            let mut src = File::open(from)?;
            let mut dst = OpenOptions::new().write(true).create_new(true).open(to)?;
            let copied = io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
            if copied.is_err() {
                // No half copy is left behind; the original stays in the inbox.
                let _ = fs::remove_file(to);
            }
            copied
        }
        linked => linked,
    }
}
