//! Tests that act on every labelled container (`clean`): they run alone, after the other
//! tests (scripts/test runs this binary with one thread), so they never remove another
//! test's containers.

use std::time::Duration;

use cibox_testsupport::engine_tests;
use cibox_testsupport::engines::*;

engine_tests!(clean_removes_every_labelled_container);

fn clean_removes_every_labelled_container(engine: &str) {
    let label = unique("clean");
    let _guard = LabelGuard::new(engine, &label);
    // A container `run --keep` left running when cibox was stopped...
    let mut child = start_sleeper(engine, &label, true);
    send_signal(&child, nix::sys::signal::Signal::SIGTERM);
    child.wait().unwrap();
    // ... and an exited one, both labelled.
    let out = output(engine_cmd(engine).args([
        "run",
        "-d",
        "--label",
        "com.qemu.instance.uuid=0123456789abcdef0123456789abcdef",
        "--label",
        &format!("cibox.test={label}"),
        "--name",
        &format!("{label}-exited"),
        &base_image(),
        "true",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    // One without the instance label must survive.
    let out = output(engine_cmd(engine).args([
        "run",
        "-d",
        "--label",
        &format!("cibox.test={label}"),
        "--name",
        &format!("{label}-stranger"),
        &base_image(),
        "sleep",
        "600",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wait_until(Duration::from_secs(10), || {
        let out = output(engine_cmd(engine).args([
            "ps",
            "-q",
            "--filter",
            &format!("label=cibox.test={label}"),
        ]));
        stdout(&out).split_whitespace().count() == 2
    }));

    let ours = containers_with_label(engine, &label);
    let stranger = output(engine_cmd(engine).args([
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{label}-stranger"),
    ]));
    let stranger = stdout(&stranger).trim().to_string();
    assert_eq!(ours.len(), 3);

    let out = output(cibox().args(["--engine", engine, "clean"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let removed: Vec<&str> = printed.split_whitespace().collect();
    for id in ours.iter().filter(|id| **id != stranger) {
        assert!(removed.contains(&id.as_str()), "{id} not in {removed:?}");
    }
    assert!(!removed.contains(&stranger.as_str()));
    assert!(
        !stdout(&out).contains("filter="),
        "the seed's debug line is gone"
    );
    let left = containers_with_label(engine, &label);
    assert_eq!(
        left.len(),
        1,
        "only the unlabelled container stays: {left:?}"
    );

    // Nothing left to remove: success, and --quiet prints nothing.
    let out = output(cibox().args(["--engine", engine, "clean", "--quiet"]));
    assert!(out.status.success());
    assert!(stdout(&out).is_empty());
}
