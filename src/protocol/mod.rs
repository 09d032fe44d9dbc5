//! The wire protocol's vocabulary, sans IO: what a file entry is, version vectors, and
//! (with the transport issue) message types and their codec.
//!
//! This module owns the data types that travel between devices. It must never touch a
//! socket, a file or the database: everything here is plain values, so it is tested with
//! values alone.

pub mod file;
pub mod vector;

pub use file::{BlockHash, BlockInfo, FileInfo, FileType};
pub use vector::{Counter, Ordering as VectorOrdering, Vector};
