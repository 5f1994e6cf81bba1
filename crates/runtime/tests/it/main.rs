//! Integration tests of the shared runtime: the HTTP front end over real sockets ([`httpd`]).

mod httpd;
