//! Errors thrown into JavaScript.
//!
//! Every error the addon throws is a plain JS `Error` whose `code` is a
//! stable snake_case name: the engine's [`evsock::ws::Error::kind`] for
//! refusals by the connection, `invalid_argument` for arguments the addon
//! itself rejects.

/// The `code` property of a thrown error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// A napi error carrying one of our codes.
pub type JsError = napi::Error<Code>;

/// The result of a call that may throw.
pub type JsResult<T> = Result<T, JsError>;

/// An argument the addon rejects before it reaches the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ArgError> for JsError {
    fn from(e: ArgError) -> Self {
        napi::Error::new(Code("invalid_argument"), e.0)
    }
}

/// Converts an engine error, keeping its kind as the JS `code`.
pub fn engine(e: evsock::ws::Error) -> JsError {
    napi::Error::new(Code(e.kind()), e.to_string())
}

/// Shorthand for an `invalid_argument` error.
pub fn arg(msg: impl Into<String>) -> ArgError {
    ArgError(msg.into())
}

/// A failure of N-API itself (out of memory, a dying environment).
pub fn napi_failure(e: napi::Error) -> JsError {
    napi::Error::new(Code("napi_failure"), e.reason.clone())
}
