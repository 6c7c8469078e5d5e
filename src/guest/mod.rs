//! The guest: inspection (OS, Python, init system) and the install plan that maps a
//! payload onto guest paths.

pub mod guestfs;
pub mod inspect;
pub mod layout;

pub use guestfs::{DirEntry, FileKind, Guest, GuestError, Stat};
pub use layout::{Layout, LayoutError, RegionReport, RootChoice};
