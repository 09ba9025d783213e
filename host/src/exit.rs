//! Exit statuses other than success (0) and failure (1): an error carrying its own status,
//! which `main` finds by downcasting and uses instead of 1.

/// An error that ends the process with `code`, printing `message` on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process exit status.
    pub code: u8,
    /// What to tell the user.
    pub message: String,
}
