//! The devserver's applet (`serve`): its command line beside its `run`, ending with
//! `inventory::submit!`.

mod serve;
