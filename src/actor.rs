//! Who is acting: the name a command acts as (`--as`, else `CRMGATE_USER`, else the OS user)
//! and the OS user who ran it, which the process cannot choose. Every event records both, so
//! acting as someone else is on the record as who did it for whom.

use std::sync::OnceLock;

/// The OS user this process runs as, from the password database: not `$USER`, which anyone can
/// set. A uid the database does not know is named by its number, never as "unknown".
pub fn os_user() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let uid = unsafe { libc::geteuid() };
        passwd_name(uid).unwrap_or_else(|| format!("uid-{uid}"))
    })
}

fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the size given; on success `found` points to
    // `pwd`, whose strings live in `buf`, read before either goes out of scope.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}
