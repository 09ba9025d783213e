//! Panic containment: every call into the plugin runs under [`guard`], and a panic comes back
//! to the host as an [`ErrorKind::Panic`] error with its message and location instead of
//! unwinding across the ABI.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use abi_stable::std_types::RResult;

use crate::{ErrorKind, PluginError};

thread_local! {
    /// The message and location of the last panic on this thread, recorded by the plugin's hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is inside [`guard`], where panics are recorded rather than printed.
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per plugin, a panic hook that records the message of a panic inside [`guard`]
/// instead of printing it, so the host reports it as one line. Panics elsewhere (a plugin's own
/// threads, its tests) go to the previous hook as usual.
pub(super) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_GUARD.get() {
                previous(info);
                return;
            }
            let message = crate::panic_message(info.payload());
            let text = match info.location() {
                Some(loc) => format!("{message} (at {}:{})", loc.file(), loc.line()),
                None => message,
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// Runs `f`, turning a panic into an [`ErrorKind::Panic`] error.
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    install_panic_hook();
    let outer = IN_GUARD.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.set(outer);
    match result {
        Ok(result) => result.into(),
        Err(_) => {
            let text = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".to_string());
            RResult::RErr(PluginError::new(
                ErrorKind::Panic,
                format!("panicked: {text}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_an_error_with_its_location() {
        let line = line!() + 1;
        let result: RResult<(), PluginError> = guard(|| panic!("boom {}", 7));
        let err = result.into_result().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panic);
        assert_eq!(
            err.message.as_str(),
            format!("panicked: boom 7 (at {}:{line})", file!())
        );
        assert!(!IN_GUARD.get(), "the flag is restored after the panic");
    }
}
