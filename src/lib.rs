//! graft: a pinned, reproducible agent payload injected into an existing cloud image.
//!
//! Layers (arrows point down only; see DESIGN.md):
//! `commands` → `guest`/`payload` → `fs` → `partition` → `disk`.
//! `recipe`, `lockfile`, `python` and `cache` are the build side's models and tools.

pub mod cache;
pub mod cli;
#[cfg(feature = "net")]
pub mod commands;
pub mod disk;
pub mod fs;
pub mod guest;
#[cfg(feature = "net")]
pub mod http;
pub mod lockfile;
pub mod partition;
pub mod payload;
pub mod python;
pub mod recipe;
pub mod util;
