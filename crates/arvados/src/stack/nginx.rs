//! TLS in front of keepproxy and the git server with the machine's real nginx (Debian's
//! `nginx-light` or `nginx`), as the seed's `start_nginx` does: cibox writes the config,
//! runs nginx in the foreground under its own daemon relay (log lines prefixed `[nginx]`),
//! with every path it writes (pid, temp bodies, lock) inside the run directory, and records
//! the TLS ports in the seed's port files `keepproxy-ssl.port` and `arv-git-httpd-ssl.port`.
//! This module owns nginx's config ([`config`]), its start and its stop (`stop_nginx`).
//!
//! Every path in the config is quoted by nginx's rules ([`quote`]), so a run directory with a
//! space, `;`, `{`, `#`, a quote or a backslash stays one argument; a run directory nginx cannot
//! take (a control character such as a newline, `$`, which nginx reads as a variable, or a name
//! that is not UTF-8) is refused with one line. The whole start holds the run-dir lock. The
//! config, the work directory and nginx's own pid file are claimed in the run's manifest
//! ([`owned`]): a stop removes them only when the run made them, and a start refuses to
//! overwrite ones it did not make. nginx's workers share the master's process group and its
//! locked pid file, so a stop also stops workers a killed master left (see
//! [`launcher::stop_locked`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::launcher::{self, Instance, Launch, PidFileBy};
use super::owned;
use super::services::remove_quietly;
use crate::rundir;
use crate::rundir::RUN_DIR_WAIT;
use cibox_runtime::process::{IfMissing, RunDir};

/// The state name (`nginx.pid`, `nginx.port`).
pub const NAME: &str = "nginx";
/// The TLS port files nginx adds, as the seed names them.
pub const PORT_FILES: [&str; 2] = ["keepproxy-ssl", "arv-git-httpd-ssl"];
/// The certificate nginx serves, in the run directory.
pub const CERT_FILE: &str = "self-signed.pem";
/// Its key, in the run directory.
pub const KEY_FILE: &str = "self-signed.key";
/// Largest request body passed on: one full Keep block.
const MAX_BODY: &str = "64m";

/// One service nginx fronts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    /// The port file name of its TLS side (`keepproxy-ssl`).
    pub tls_name: &'static str,
    /// The plain HTTP port behind it.
    pub backend_port: u16,
    /// The TLS port nginx listens on.
    pub tls_port: u16,
}

/// What the config needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The run directory (pid file, temp paths).
    pub run_dir: PathBuf,
    /// Certificate and key files.
    pub cert: PathBuf,
    /// The key.
    pub key: PathBuf,
    /// The services to front.
    pub fronts: Vec<Front>,
    /// Run the workers as this user (only when nginx starts as root).
    pub user: Option<String>,
}

/// The work directory's name in the run directory.
const WORK_DIR: &str = "nginx";
/// The config file's name in the run directory.
const CONFIG_FILE: &str = "nginx.conf";

/// The work directory under the run directory for nginx's temp files and lock.
pub fn work_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(WORK_DIR)
}

/// The config file cibox writes, `RUN_DIR/nginx.conf`.
pub fn config_file(run_dir: &Path) -> PathBuf {
    run_dir.join(CONFIG_FILE)
}

/// `path` as one nginx config argument: in double quotes, `"` and `\` escaped. Paths nginx
/// cannot take are refused before ([`check_path`]).
pub fn quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Refuses a run directory nginx cannot take in its config: a name that is not UTF-8, a
/// control character (a newline would end the quoted string's line, and the pid file's
/// comment on the command line), or `$` (nginx reads variables in certificate paths).
pub fn check_path(run_dir: &Path) -> anyhow::Result<()> {
    let Some(text) = run_dir.to_str() else {
        anyhow::bail!(
            "run directory {run_dir:?}: nginx cannot take a path that is not UTF-8: choose \
             another --run-dir"
        );
    };
    let what = if text.contains('\n') {
        "a newline"
    } else if text.chars().any(char::is_control) {
        "a control character"
    } else if text.contains('$') {
        "a '$' (nginx reads it as a variable)"
    } else {
        return Ok(());
    };
    anyhow::bail!(
        "run directory {text:?}: nginx cannot take a path with {what}: choose another --run-dir"
    )
}

/// The pid file nginx itself writes (`NAME.pid.master`), beside the one the launcher holds
/// locked for it (`NAME.pid`). nginx truncates and rewrites its own once it has started, and
/// removes it on exit, which must never touch the file `stop` reads. Its path, on nginx's command
/// line, names the launcher's file too: the pid file check looks for that name there.
pub fn master_pid_file(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".master");
    PathBuf::from(name)
}

/// The nginx config for `settings`.
pub fn config(settings: &Settings) -> String {
    let work = work_dir(&settings.run_dir);
    let q = |name: &str| quote(&work.join(name));
    let mut c = String::new();
    let _ = writeln!(c, "# Written by cibox start_nginx.");
    let _ = writeln!(c, "daemon off;");
    let _ = writeln!(c, "master_process on;");
    let _ = writeln!(c, "worker_processes 1;");
    if let Some(user) = &settings.user {
        let _ = writeln!(c, "user {user};");
    }
    // The pid file is given on the command line (see `start` and `master_pid_file`).
    let _ = writeln!(c, "lock_file {};", q("nginx.lock"));
    let _ = writeln!(c, "error_log stderr info;");
    let _ = writeln!(c, "events {{ worker_connections 256; }}");
    let _ = writeln!(c, "http {{");
    let _ = writeln!(c, "  access_log /dev/stderr;");
    for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(c, "  {kind}_temp_path {};", q(kind));
    }
    let _ = writeln!(c, "  client_max_body_size {MAX_BODY};");
    let _ = writeln!(c, "  proxy_pass_request_headers on;");
    for front in &settings.fronts {
        let upstream = front.tls_name.replace('-', "_");
        let _ = writeln!(
            c,
            "  upstream {upstream} {{ server 127.0.0.1:{}; }}",
            front.backend_port
        );
        let _ = writeln!(c, "  server {{");
        let _ = writeln!(c, "    listen 127.0.0.1:{} ssl;", front.tls_port);
        let _ = writeln!(c, "    server_name _;");
        let _ = writeln!(c, "    ssl_certificate {};", quote(&settings.cert));
        let _ = writeln!(c, "    ssl_certificate_key {};", quote(&settings.key));
        let _ = writeln!(c, "    location / {{");
        let _ = writeln!(c, "      proxy_pass http://{upstream};");
        let _ = writeln!(c, "      proxy_http_version 1.1;");
        let _ = writeln!(c, "      proxy_set_header Host $http_host;");
        let _ = writeln!(c, "      proxy_set_header X-Forwarded-For $remote_addr;");
        let _ = writeln!(c, "      proxy_set_header X-Forwarded-Proto https;");
        // Clients through nginx count as external, as in Arvados' own nginx setup.
        let _ = writeln!(c, "      proxy_set_header X-External-Client 1;");
        let _ = writeln!(c, "      proxy_request_buffering off;");
        let _ = writeln!(c, "      proxy_buffering off;");
        let _ = writeln!(c, "      proxy_read_timeout 300s;");
        let _ = writeln!(c, "      proxy_send_timeout 300s;");
        let _ = writeln!(c, "    }}");
        let _ = writeln!(c, "  }}");
    }
    let _ = writeln!(c, "}}");
    c
}

/// The nginx program: `PATH`, then the sbin directories the seed adds.
pub fn find_nginx() -> anyhow::Result<PathBuf> {
    if let Ok(found) = which::which("nginx") {
        return Ok(found);
    }
    for dir in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        let candidate = Path::new(dir).join("nginx");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "nginx not found in PATH, /usr/sbin, /sbin or /usr/local/sbin: install it \
         (Debian: apt-get install nginx-light)"
    )
}

/// What `start_nginx` started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedNginx {
    /// The master's pid.
    pub pid: u32,
    /// keepproxy over TLS, when keepproxy runs.
    pub keepproxy_ssl_port: Option<u16>,
    /// The git server over TLS, when it runs.
    pub git_ssl_port: Option<u16>,
    /// The config written.
    pub config: PathBuf,
}

/// Starts nginx (`program`, else [`find_nginx`]) in front of whichever of keepproxy and the
/// git server the run directory records, with the run directory's certificate; writes the TLS
/// port files. The run directory stays locked throughout; on failure or a signal
/// ([`launcher::Launch`]) nginx is stopped and what this start made removed.
pub fn start(run_dir: &Path, program: Option<&Path>) -> anyhow::Result<StartedNginx> {
    let program = match program {
        Some(p) => {
            anyhow::ensure!(p.is_file(), "--nginx {}: no such program", p.display());
            p.to_path_buf()
        }
        None => find_nginx()?,
    };
    check_path(&std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf()))?;
    let launch = Launch::begin(run_dir)?;
    let run_dir = launch.run_dir().to_path_buf();
    check_path(&run_dir)?;
    let (cert, key) = (run_dir.join(CERT_FILE), run_dir.join(KEY_FILE));
    for file in [&cert, &key] {
        anyhow::ensure!(
            file.is_file(),
            "no TLS certificate: {} is missing (the API server's start writes it)",
            file.display()
        );
    }
    let backends: Vec<(&'static str, u16)> = [
        (PORT_FILES[0], crate::keepproxy::NAME),
        (PORT_FILES[1], crate::git::NAME),
    ]
    .into_iter()
    .filter_map(|(tls, name)| rundir::recorded_port(&run_dir, name).map(|p| (tls, p)))
    .collect();
    anyhow::ensure!(
        !backends.is_empty(),
        "nothing for nginx to front in {}: start keepproxy or the git server first",
        run_dir.display()
    );
    // Stop an earlier nginx before taking its ports' place.
    stop_locked(launch.lock()).context("stopping the nginx left from an earlier start")?;
    let result = (|| {
        launch.check()?;
        let lock = launch.lock();
        let pid_path = rundir::pid_file(&run_dir, NAME);
        let master_pid = master_pid_file(&pid_path);
        let master_name = master_pid
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for name in [WORK_DIR, CONFIG_FILE, master_name.as_str()] {
            owned::claim(lock, name)?;
        }
        let work = work_dir(&run_dir);
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let user = nix::unistd::geteuid()
            .is_root()
            .then(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .flatten();
        let conf_path = config_file(&run_dir);
        // The first TLS port is the one the launcher picks (and retries); the others are fixed.
        let mut extra_ports = Vec::new();
        for _ in 1..backends.len() {
            extra_ports
                .push(cibox_runtime::process::free_loopback_port().context("finding a free port")?);
        }
        let settings_for = |first: u16| Settings {
            run_dir: run_dir.clone(),
            cert: cert.clone(),
            key: key.clone(),
            fronts: backends
                .iter()
                .zip(std::iter::once(first).chain(extra_ports.iter().copied()))
                .map(|(&(tls_name, backend_port), tls_port)| Front {
                    tls_name,
                    backend_port,
                    tls_port,
                })
                .collect(),
            user: user.clone(),
        };
        let write_error = std::sync::Mutex::new(None);
        let mut instance = Instance::new(NAME, program, |port: u16| {
            if let Err(e) = cibox_runtime::process::write_atomic(
                &conf_path,
                config(&settings_for(port)).as_bytes(),
                0o644,
            ) {
                *write_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
            vec![
                "-e".into(),
                "stderr".into(),
                "-p".into(),
                work.clone().into_os_string(),
                "-c".into(),
                conf_path.clone().into_os_string(),
                "-g".into(),
                pid_directive(&pid_path).into(),
            ]
        });
        instance.extra_ports = extra_ports.clone();
        instance.pid_file_by = PidFileBy::Launcher;
        let started = launch.start(&instance);
        if let Some(e) = write_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e).with_context(|| format!("writing {}", conf_path.display()));
        }
        let started = started?;
        let mut result = StartedNginx {
            pid: started.pid,
            keepproxy_ssl_port: None,
            git_ssl_port: None,
            config: conf_path.clone(),
        };
        for front in &settings_for(started.port).fronts {
            launcher::write_port(&run_dir, front.tls_name, front.tls_port)
                .context("writing the TLS port files")?;
            if front.tls_name == PORT_FILES[0] {
                result.keepproxy_ssl_port = Some(front.tls_port);
            } else {
                result.git_ssl_port = Some(front.tls_port);
            }
        }
        Ok(result)
    })();
    launch.finish(result, remove_own_files)
}

/// nginx's `-g` argument: its own pid file ([`master_pid_file`]), quoted, then a comment naming
/// the launcher's pid file verbatim, so the pid file check finds that name on nginx's command
/// line whatever the quoting did to it.
fn pid_directive(pid_path: &Path) -> String {
    format!(
        "pid {}; # {}",
        quote(&master_pid_file(pid_path)),
        pid_path.display()
    )
}

/// `stop_nginx`: nginx (with what is left of its process group) and its TLS port files, then
/// (when it stopped) its own pid file, config and work directory, when the run made them.
pub fn stop(run_dir: &Path) -> anyhow::Result<()> {
    match RunDir::lock(run_dir, IfMissing::Report, RUN_DIR_WAIT)? {
        Some(lock) => stop_locked(&lock),
        None => Ok(()),
    }
}

/// [`stop`] in a run directory the caller holds locked.
fn stop_locked(lock: &RunDir) -> anyhow::Result<()> {
    let result = launcher::stop_locked(lock.path(), NAME).map(|_| ());
    if result.is_ok() {
        remove_own_files(lock);
    } else {
        remove_tls_port_files(lock.path());
    }
    result
}

fn remove_tls_port_files(run_dir: &Path) {
    for tls in PORT_FILES {
        remove_quietly(&rundir::port_file(run_dir, tls));
    }
}

/// Removes what nginx has beside its pid and port files (which [`launcher`] owns), once it
/// is stopped: the TLS port files, and its own pid file, config and work directory when the
/// run made them.
fn remove_own_files(lock: &RunDir) {
    let run_dir = lock.path();
    remove_tls_port_files(run_dir);
    let master = master_pid_file(&rundir::pid_file(run_dir, NAME));
    if let Some(name) = master.file_name() {
        owned::remove(lock, &name.to_string_lossy());
    }
    owned::remove(lock, CONFIG_FILE);
    owned::remove(lock, WORK_DIR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_every_path_in_the_run_dir() {
        let settings = Settings {
            run_dir: "/r".into(),
            cert: "/r/c.pem".into(),
            key: "/r/c.key".into(),
            fronts: vec![Front {
                tls_name: "keepproxy-ssl",
                backend_port: 1000,
                tls_port: 2000,
            }],
            user: None,
        };
        let c = config(&settings);
        assert!(c.contains("listen 127.0.0.1:2000 ssl;"));
        assert!(c.contains("server 127.0.0.1:1000;"));
        assert!(c.contains("client_max_body_size 64m;"));
        assert!(!c.contains("user "));
        for line in c
            .lines()
            .filter(|l| l.contains("_path ") || l.contains("lock_file"))
        {
            assert!(line.contains(" \"/r/nginx/"), "{line}");
        }
        assert!(!c.contains("/var/"));
        assert!(!c.contains("/run/"));
    }

    #[test]
    fn paths_are_quoted_and_paths_nginx_cannot_take_refused() {
        assert_eq!(
            quote(Path::new("/a b;c/\"q\"\\d")),
            "\"/a b;c/\\\"q\\\"\\\\d\""
        );
        let settings = Settings {
            run_dir: "/r x;y".into(),
            cert: "/r x;y/c.pem".into(),
            key: "/r x;y/c.key".into(),
            fronts: vec![],
            user: None,
        };
        let c = config(&settings);
        assert!(c.contains("lock_file \"/r x;y/nginx/nginx.lock\";"), "{c}");
        assert_eq!(
            pid_directive(Path::new("/r\"/nginx.pid")),
            "pid \"/r\\\"/nginx.pid.master\"; # /r\"/nginx.pid"
        );
        assert!(check_path(Path::new("/tmp/a b;\"c\\")).is_ok());
        for bad in ["/tmp/a\nb", "/tmp/a\rb", "/tmp/$x"] {
            let err = check_path(Path::new(bad)).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains("choose another --run-dir"), "{err}");
        }
    }
}
