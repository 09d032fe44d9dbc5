//! The one integration-test binary: the real `shoal` binary on temp homes.

mod cli;
mod disk;
mod harness;
mod hostile;
mod mesh;
mod names;
mod safety;
mod scan;
mod serve;
mod sync;
mod tui;
