//! Shoal: peer-to-peer folder sync for the terminal.
//!
//! Data flows one way: the scanner (`scan`) walks a folder, cuts files into
//! content-defined blocks and hashes them; the block index (`db`) records what each device
//! has; the sync engine exchanges index changes and blocks with trusted devices over TLS.
//!
//! Modules, bottom up (a module may use those above it in this list, never those below):
//! - `identity`: device IDs (Syncthing's text form) and the certificate and key.
//! - `protocol`: sans-IO wire vocabulary: file entries, version vectors, messages.
//! - `config`: the home, the TOML config, its validation and atomic saves.
//! - `db`: the SQLite block index; one writer thread batches commands into transactions.
//! - `scan`: walking, ignore rules, chunking and hashing on a bounded pool.
//! - `indexer`: runs a scan of one folder into the index (marker check, batching).
//! - `net`: TLS (the dangerous verifier in `net::danger`), connections, dialers.
//! - `sync`: index exchange, the puller, answering block requests, watching.
//! - `service`: boots and supervises everything; events; the control API.
//! - `tui`: the dashboard (`shoal tui`); talks to the service only through the control API.
//! - `cli`: the command line; talks to the config and index directly, or to the service.

pub mod cli;
pub mod config;
pub mod db;
pub mod identity;
pub mod indexer;
pub mod net;
pub mod protocol;
pub mod scan;
pub mod service;
pub mod sync;
pub mod tui;
