//! The `run_test_server` Python module `cibox --install` writes, used as the Arvados SDK's tests
//! use it: imported by the real SDK (arvados-python-client) in the test environment's venv,
//! `run()` starts the API server and points the SDK at it, `authorize_with` and `fixture` answer
//! from the fixture set, `run_keep()` starts keepstores the SDK's KeepClient writes to, a
//! `TestCaseWithServers` class saves a collection, unserved functions refuse by name, and run
//! as a program the module is the launcher's command line.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// What the SDK prints, one fact a line, for the assertions below.
const SCRIPT: &str = r#"
import os, sys, unittest
sys.path.insert(0, sys.argv[1])
import run_test_server as rts
import arvados

host = rts.run()
print("host", host == os.environ["ARVADOS_API_HOST"])
rts.authorize_with("active")
print("current", arvados.api("v1").users().current().execute()["uuid"])
print("fixture", rts.fixture("collections")["foo_file"]["portable_data_hash"])
print("token", rts.auth_token("admin"))
print("user", rts.fixture("users")["active"]["uuid"])
rts.run_keep(num_servers=2)
keep = arvados.KeepClient(api_client=arvados.api("v1"))
locator = keep.put(b"written through run_test_server")
print("keep", keep.get(locator) == b"written through run_test_server")
rts.stop_keep()
rts.run_ws()
try:
    rts.run_keep_web()
except rts.NotServedByCibox as error:
    print("refused", error)

class Saves(rts.TestCaseWithServers):
    MAIN_SERVER = {}
    KEEP_SERVER = {}

    def test_save(self):
        collection = arvados.collection.Collection()
        with collection.open("x.txt", "w") as f:
            f.write("data")
        collection.save_new()
        print("saved", collection.portable_data_hash())

result = unittest.TextTestRunner(stream=sys.stderr).run(
    unittest.defaultTestLoader.loadTestsFromTestCase(Saves))
print("class", result.wasSuccessful())
rts.stop(force=True)
"#;

fn install(dir: &Path) {
    let out = Command::new(cibox_testsupport::cibox_bin())
        .arg("--install")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_sdk_runs_its_servers_through_the_installed_module() {
    let Some(python) = sdk_python() else {
        return;
    };
    let stack = Stack::new();
    let bin = stack.run_dir().with_file_name("bin");
    install(&bin);
    let module = std::fs::read_to_string(bin.join("run_test_server.py")).unwrap();
    assert!(module.contains(cibox_core::pystub::MARKER));
    let script = bin.with_file_name("sdk_script.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let run_dir = stack.run_dir().to_string_lossy().into_owned();
    let out = stack.sdk(
        &python,
        "python",
        &[script.to_str().unwrap(), bin.to_str().unwrap()],
        &[("CIBOX_RUN_DIR".to_string(), run_dir)],
    );
    let lines: Vec<&str> = out.lines().collect();
    let admin = cibox_arvados::api::fixtures::token("admin").unwrap();
    let foo = "1f4b0bc7583c2a7f9102c395f4ffc5e3+45";
    for want in [
        "host True".to_string(),
        format!(
            "current {}",
            cibox_arvados::api::fixtures::user_uuid("active").unwrap()
        ),
        format!("fixture {foo}"),
        format!("token {admin}"),
        format!(
            "user {}",
            cibox_arvados::api::fixtures::user_uuid("active").unwrap()
        ),
        "keep True".to_string(),
        "class True".to_string(),
    ] {
        assert!(lines.contains(&want.as_str()), "no {want:?} in {out}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("refused run_test_server.run_keep_web:")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.starts_with("saved ")), "{out}");
    // Nothing left running in the run directory.
    assert!(
        !stack.run_dir().join("api.pid").exists(),
        "{:?}",
        stack.files()
    );
}

#[test]
fn run_as_a_program_the_module_is_the_launchers_command_line() {
    let stack = Stack::new();
    let bin = stack.run_dir().with_file_name("bin");
    install(&bin);
    let run_dir = stack.run_dir();
    let out = Command::new("python3")
        .arg(bin.join("run_test_server.py"))
        .args(["start_keep", "--run-dir"])
        .arg(&run_dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(run_dir.join("keep0.pid").exists(), "{:?}", stack.files());
    let out = Command::new("python3")
        .arg(bin.join("run_test_server.py"))
        .args(["stop_keep", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!run_dir.join("keep0.pid").exists(), "{:?}", stack.files());
    // Not an action of the launcher: refused under the script's name.
    let out = Command::new("python3")
        .arg(bin.join("run_test_server.py"))
        .arg("probe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("run_test_server.py: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
