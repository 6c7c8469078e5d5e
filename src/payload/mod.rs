//! The payload: the guest file tree, its reproducible archive and its manifest.
