//! `run_test_server.py`: the name Arvados' test launcher goes by. Called as
//! `run_test_server.py ACTION`, cibox takes the seed's ten actions: `start` and `stop` run
//! `start_api` and `stop_api`, the others the applets of the same names. `cibox --install`
//! links the name to cibox.

inventory::submit! {
    cibox_core::applet::Script {
        name: "run_test_server.py",
        actions: Some(&[
            ("start", "start_api"),
            ("stop", "stop_api"),
            ("start_keep", "start_keep"),
            ("stop_keep", "stop_keep"),
            ("start_keep_proxy", "start_keep_proxy"),
            ("stop_keep_proxy", "stop_keep_proxy"),
            ("start_arv-git-httpd", "start_arv-git-httpd"),
            ("stop_arv-git-httpd", "stop_arv-git-httpd"),
            ("start_nginx", "start_nginx"),
            ("stop_nginx", "stop_nginx"),
            ("stop_all", "stop_all"),
        ]),
        stub: None,
    }
}
