//! Python packaging: resolving through pip, wheel tags, wheel unpacking, the virtual
//! environment layout and console-script wrappers.

#[cfg(feature = "net")]
pub mod index;
pub mod pip;
#[cfg(feature = "net")]
pub mod resolve;
pub mod scripts;
pub mod tags;
pub mod venv;
pub mod version;
pub mod wheel;
