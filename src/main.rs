//! The binary: parse, run, exit with the status `run` picked.
//!
//! `no_main`: ocwrap starts in front of every start of a server, so it skips
//! the Rust runtime's start-up work it does not need (reading
//! `/proc/self/maps` for a main-thread stack guard, an alternate signal
//! stack). `run` sets the one piece of that setup ocwrap relies on, SIGPIPE,
//! itself. Arguments still come from `std::env::args` (glibc hands them to
//! std before `main`).
//! (Under `cargo test` the test harness brings its own `main`.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
// SAFETY: the C `main` symbol is ours alone (no_main: std defines none), and
// its signature is the one the C runtime calls.
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let code = ocwrap::run();
    // std's runtime would flush stdout at exit; without it, do it here.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
