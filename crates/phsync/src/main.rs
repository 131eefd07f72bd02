//! The `phsync` command line: a thin front door over the library.

mod bench;
mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
