//! C API for evsock (work in progress).
