//! Node.js binding for evsock (work in progress).
