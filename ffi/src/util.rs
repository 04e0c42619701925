//! Checked conversions of C arguments into Rust values.

use std::ffi::{c_char, CStr};

use crate::conn::evsock_header;
use crate::status::Fail;

/// Borrows a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unmodified for `'a`.
pub(crate) unsafe fn c_str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Fail::arg(format!("{what} is not valid UTF-8")))
}

/// Like [`c_str_arg`], but NULL means "absent".
///
/// # Safety
/// As for [`c_str_arg`].
pub(crate) unsafe fn opt_c_str_arg<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Fail> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract; `p` is non-NULL here.
    unsafe { c_str_arg(p, what) }.map(Some)
}

/// Borrows a byte-buffer argument. NULL is allowed only with `len == 0`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that stay valid and
/// unmodified for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Fail::arg(format!("{what} length is too large")));
    }
    // SAFETY: non-NULL, `len` bytes readable per the caller's contract, and
    // `len` fits the slice size limit.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows an array argument of `len` elements. NULL only with `len == 0`.
///
/// # Safety
/// As for [`bytes_arg`], for `len` elements of `T`.
pub(crate) unsafe fn array_arg<'a, T>(
    p: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len > 4096 {
        return Err(Fail::arg(format!("{what}: more than 4096 entries")));
    }
    // SAFETY: non-NULL, `len` (bounded above) initialized elements per the
    // caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

pub(crate) use evsock::ws::handshake::is_token;

/// Headers evsock writes itself; a host may not add them.
const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "content-type",
];

/// Checks one extra header a host wants sent.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), Fail> {
    if !is_token(name) {
        return Err(Fail::arg(format!(
            "header name {name:?} is not an HTTP token"
        )));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(Fail::arg(format!("header {name} is set by evsock")));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Fail::arg(format!(
            "header {name} has a control character in its value"
        )));
    }
    Ok(())
}

/// Reads `n` header structs into owned pairs, checking each one.
///
/// # Safety
/// `p` is NULL or points at `n` `evsock_header`s whose strings are
/// NUL-terminated.
pub(crate) unsafe fn headers_arg(
    p: *const evsock_header,
    n: usize,
) -> Result<Vec<(String, String)>, Fail> {
    // SAFETY: forwarded from the caller's contract.
    let hs = unsafe { array_arg(p, n, "headers")? };
    let mut out = Vec::with_capacity(hs.len());
    for h in hs {
        // SAFETY: forwarded from the caller's contract.
        let name = unsafe { c_str_arg(h.name, "header name")? };
        // SAFETY: forwarded from the caller's contract.
        let value = unsafe { c_str_arg(h.value, "header value")? };
        check_header(name, value)?;
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}
