//! Python binding for evsock (work in progress).
