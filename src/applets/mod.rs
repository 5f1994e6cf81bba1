//! One module per applet. Each file defines its command line (clap derive) beside its `run`
//! function and ends with `inventory::submit!`; declaring the module here is all it takes to
//! link it into the binary.

mod apiserver;
mod arv_git_httpd;
mod build;
mod cc;
mod check;
mod clean;
mod fetch;
mod images;
mod keepproxy;
mod keepstore;
mod probe;
mod run;
mod serve;
mod start_api;
mod start_arv_git_httpd;
mod start_keep;
mod start_keep_proxy;
mod start_nginx;
mod stop_all;
mod stop_api;
mod stop_arv_git_httpd;
mod stop_keep;
mod stop_keep_proxy;
mod stop_nginx;
mod update;
