//! The Debian package, installed for real: in a fresh container of the test environment's
//! Debian image (`$CIBOX_TEST_CC_IMAGE`, bookworm), with no network, the package built by
//! `scripts/package` (`$CIBOX_TEST_DEB`) is installed with dpkg; then `cibox --version`, the
//! man pages, the completions and the installed Dockerfiles are checked, `cibox serve --port 0`
//! answers one Omaha update check (sent with bash's /dev/tcp: the image has no curl), and
//! `dpkg -r` must leave none of the package's files behind.
//!
//! `scripts/test` builds the package and sets `CIBOX_TEST_DEB` and `CIBOX_REQUIRE_PACKAGE=1`;
//! run alone without them, the test is skipped with a note.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cibox_testsupport::engines::*;

/// Runs in the container; prints `key=value` lines the test checks, `file=` once per leftover.
const SCRIPT: &str = r#"
set -u
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -i /tmp/cibox.deb >/tmp/dpkg.log 2>&1; then
    echo "installed=no"; cat /tmp/dpkg.log; exit 0
fi
echo "installed=yes"
echo "path=$(command -v cibox)"
echo "version=$(cibox --version)"
echo "status=$(dpkg-query -W -f='${Status}' cibox)"
for page in cibox cibox-build cibox-serve cibox-start_keep; do
    f=/usr/share/man/man1/$page.1.gz
    if [ -f "$f" ] && zcat "$f" | grep -q '^.SH "EXIT STATUS"'; then echo "man.$page=ok"; fi
done
[ -f /usr/share/bash-completion/completions/cibox ] && echo "completion.bash=ok"
[ -f /usr/share/zsh/vendor-completions/_cibox ] && echo "completion.zsh=ok"
[ -f /usr/share/fish/vendor_completions.d/cibox.fish ] && echo "completion.fish=ok"
[ -f /usr/share/cibox/dockerfiles/cibox-test-busybox.docker ] && echo "dockerfiles=ok"
[ -f /usr/share/doc/cibox/copyright ] && echo "copyright=ok"
# No applet links by default.
[ -e /usr/bin/probe ] || [ -e /usr/bin/run ] || echo "links=none"

data=$(mktemp -d)
cibox serve --host 127.0.0.1 --port 0 --data_dir "$data/d" >"$data/out" 2>"$data/err" &
server=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$data/out" 2>/dev/null && break
    sleep 0.1
done
port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$data/out")
echo "port=$port"
body='<request protocol="3.0"><app appid="{PKGTEST}" version="1.0.0" board="amd64-generic"><updatecheck/></app></request>'
if [ -n "$port" ] && exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    printf 'POST /update HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nContent-Type: text/xml\r\nContent-Length: %s\r\n\r\n%s' \
        "$port" "${#body}" "$body" >&3
    answer=$(cat <&3 | tr -d '\r\n')
    exec 3<&-
    echo "answer=$answer"
fi
kill "$server"
wait "$server"
echo "serve.exit=$?"
rm -rf "$data"

dpkg-query -L cibox >/tmp/files
dpkg -r cibox >/tmp/dpkg.log 2>&1 && echo "removed=yes"
dpkg-query -W -f='${Status}' cibox >/dev/null 2>&1 &&
    echo "after=$(dpkg-query -W -f='${Status}' cibox)"
while read -r f; do
    if [ -e "$f" ] && [ ! -d "$f" ]; then echo "file=$f"; fi
done </tmp/files
[ -d /usr/share/cibox ] && echo "file=/usr/share/cibox"
[ -d /usr/share/doc/cibox ] && echo "file=/usr/share/doc/cibox"
echo "done=yes"
"#;

/// The package to test, or `None` (skipped) when none was built.
fn package() -> Option<PathBuf> {
    match std::env::var_os("CIBOX_TEST_DEB") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "CIBOX_TEST_DEB={} is not a file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CIBOX_REQUIRE_PACKAGE").is_ok_and(|v| v == "1") => {
            panic!("CIBOX_REQUIRE_PACKAGE=1 but CIBOX_TEST_DEB is not set")
        }
        None => {
            eprintln!(
                "skipped: no package to install (scripts/package --profile dev, then set \
                 CIBOX_TEST_DEB to the .deb it prints)"
            );
            None
        }
    }
}

#[test]
fn the_package_installs_serves_and_removes_cleanly() {
    let Some(deb) = package() else { return };
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("cibox_{}_amd64.deb", env!("CARGO_PKG_VERSION")),
        "the package's file name"
    );
    let engines = std::env::var("CIBOX_TEST_ENGINES").unwrap_or_default();
    let Some(engine) = engines.split_whitespace().next().map(str::to_string) else {
        assert!(engine_available("podman"));
        return;
    };
    let image =
        std::env::var("CIBOX_TEST_CC_IMAGE").unwrap_or_else(|_| "cibox-test/gcc:bookworm".into());
    let out = output(
        engine_cmd(&engine)
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!(
                "{}:/tmp/cibox.deb:ro",
                deb.canonicalize().unwrap().display()
            ))
            .args([&image, "bash", "-c", SCRIPT]),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let mut facts: BTreeMap<String, String> = BTreeMap::new();
    let mut left: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            if key == "file" {
                left.push(value.to_string());
            } else {
                facts.insert(key.to_string(), value.to_string());
            }
        }
    }
    let fact = |key: &str| facts.get(key).map(String::as_str).unwrap_or("");
    assert_eq!(fact("installed"), "yes", "{text}");
    assert_eq!(fact("path"), "/usr/bin/cibox");
    assert_eq!(
        fact("version"),
        format!("cibox {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(fact("status"), "install ok installed");
    for page in ["cibox", "cibox-build", "cibox-serve", "cibox-start_keep"] {
        assert_eq!(fact(&format!("man.{page}")), "ok", "{page}(1): {text}");
    }
    for shell in ["bash", "zsh", "fish"] {
        assert_eq!(
            fact(&format!("completion.{shell}")),
            "ok",
            "{shell}: {text}"
        );
    }
    assert_eq!(fact("dockerfiles"), "ok", "{text}");
    assert_eq!(fact("copyright"), "ok", "{text}");
    assert_eq!(fact("links"), "none", "applet links installed: {text}");

    let answer = fact("answer");
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
        "{text}"
    );
    assert!(answer.contains(r#"<updatecheck status="ok">"#), "{answer}");
    assert!(
        answer.contains(r#"hash="kGcOinJ0vA8vdYX53FN0F5BdwfY=""#),
        "the demo payload's SHA-1: {answer}"
    );
    assert!(answer.contains(r#"appid="{PKGTEST}""#), "{answer}");
    assert_eq!(
        fact("serve.exit"),
        "0",
        "serve stops cleanly on SIGTERM: {text}"
    );

    assert_eq!(fact("removed"), "yes", "{text}");
    assert!(
        fact("after").is_empty() || fact("after").contains("not-installed"),
        "after dpkg -r: {}",
        fact("after")
    );
    assert!(left.is_empty(), "dpkg -r left {left:?}");
    assert_eq!(fact("done"), "yes", "{text}");
}
