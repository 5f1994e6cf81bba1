//! Shared process helpers: spawn daemons, pid files, free ports, wait until a port accepts, stop with a deadline. Not yet written.
