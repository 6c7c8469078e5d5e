//! Python packaging: resolving through pip, wheel tags, wheel unpacking, the virtual
//! environment layout and console-script wrappers.

pub mod index;
pub mod pip;
pub mod scripts;
pub mod venv;
pub mod wheel;
