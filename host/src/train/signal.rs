//! Ctrl-C and termination requests: SIGINT and SIGTERM (and their Windows equivalents) set a
//! flag that the training loop checks after every step. The loop then finishes the step,
//! writes `last`, says how to resume, and the command exits with status 130.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "please stop" flag.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag nobody has raised.
    pub fn new() -> Self {
        StopFlag::default()
    }

    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Ctrl-C handler: {0}")]
pub struct SignalError(String);

/// Raises `flag` on SIGINT or SIGTERM. A second signal while the run is saving exits at once
/// with status 130. Call once per process.
pub fn on_interrupt(flag: &StopFlag) -> Result<(), SignalError> {
    let flag = flag.clone();
    ctrlc::set_handler(move || {
        if flag.is_raised() {
            eprintln!("\nsecond interrupt: exiting without waiting for the checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current step and saving `last`...");
        flag.raise();
    })
    .map_err(|e| SignalError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = StopFlag::new();
        let b = a.clone();
        assert!(!b.is_raised());
        a.raise();
        assert!(b.is_raised());
    }
}
