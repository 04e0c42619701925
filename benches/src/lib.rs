//! Benchmarks of evsock against its peers (work in progress).
