//! The guest: inspection (OS, Python, init system) and the install plan that maps a
//! payload onto guest paths.
