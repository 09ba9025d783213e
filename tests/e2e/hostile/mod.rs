//! Hostile inputs: each test sets up one thing a careless or unlucky user does (a half-copied
//! plugin, a symlink loop in the data, a kill during export, two runs in one directory, a
//! damaged checkpoint, ...), then asserts the exact message the user sees and that nothing on
//! disk was lost or left half-written.

mod data;
mod plugins;
mod run;
