//! One module per applet. Each file defines its command line (clap derive) beside its `run`
//! function and ends with `inventory::submit!`; declaring the module here is all it takes to
//! link it into the binary.

mod apiserver;
mod build;
mod cc;
mod check;
mod clean;
mod fetch;
mod images;
mod keepstore;
mod probe;
mod run;
mod serve;
mod start_api;
mod start_keep;
mod stop_api;
mod stop_keep;
mod update;
