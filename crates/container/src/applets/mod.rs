//! The container helper's applets, one file each: its command line (clap derive) beside its
//! `run`, ending with `inventory::submit!`. Declaring the module here links it in.

mod build;
mod cc;
mod check;
mod clean;
mod docker_py;
mod fetch;
mod images;
mod probe;
mod run;
mod update;
