//! The cibox binary: everything happens in [`cibox::multicall`].

fn main() -> std::process::ExitCode {
    cibox::multicall::main_with(std::env::args_os().collect())
}
