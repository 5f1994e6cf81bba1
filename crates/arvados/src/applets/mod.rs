//! The Arvados stack's applets, one file each: the servers (`apiserver`, `keepstore`,
//! `keepproxy`, `arv-git-httpd`) and the `start_*`/`stop_*` actions of `run_test_server.py`.

mod apiserver;
mod arv_git_httpd;
mod arvados_fixtures;
mod keepproxy;
mod keepstore;
mod run_test_server;
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
