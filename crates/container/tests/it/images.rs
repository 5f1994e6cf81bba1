//! build, check, fetch, update and cc against real podman and Docker and the local registry.
//!
//! Every test uses image names of its own (`cibox-test/<what>-<pid>-<n>`), removed at the end
//! by an [`Images`] guard, and runs cibox with `TMPDIR` pointing at a directory of its own, so
//! that it can check that nothing was left behind there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cibox_testsupport::engine_tests;
use cibox_testsupport::engines::*;

engine_tests!(
    build_then_up_to_date_then_no_cache,
    up_to_date_decision_costs_one_engine_call,
    from_qemu_inlining_rebuilds_when_the_base_file_changes,
    interoperates_with_the_reference_script_both_ways,
    extra_file_change_rebuilds,
    pre_script_exit_statuses,
    include_executable_runs_in_the_container,
    include_executable_by_binfmt_entry,
    changed_executable_and_user_rebuild,
    registry_bases_and_cache,
    failed_build_is_one_line_and_leaves_nothing,
    signals_remove_the_build_context,
    check_messages_and_statuses,
    check_age_in_three_time_zones,
    fetch_from_the_local_registry,
    update_adds_an_executable,
    update_adds_the_user,
    cc_compiles_and_returns_the_compiler_status,
);

/// A scratch directory for one test: files, and the TMPDIR cibox runs with.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("scratch dir");
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.file(name, text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// `cibox --engine ENGINE` with TMPDIR inside the scratch directory.
    fn cibox(&self, engine: &str) -> Command {
        let mut command = cibox();
        command
            .env("TMPDIR", self.tmp())
            .args(["--engine", engine])
            .stdin(Stdio::null());
        command
    }

    fn assert_tmp_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    }
}

/// The one line cibox printed on stderr for an error (engine warnings aside).
fn error_line(out: &Output, applet: &str) -> String {
    let text = stderr(out);
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("cibox {applet}: ")))
        .collect();
    assert_eq!(ours.len(), 1, "expected one error line, stderr: {text}");
    ours[0].to_string()
}

fn build(s: &Scratch, engine: &str, tag: &str, dockerfile: &Path, extra: &[&str]) -> Output {
    let mut command = s.cibox(engine);
    command
        .arg("build")
        .arg("-t")
        .arg(tag)
        .arg("-f")
        .arg(dockerfile);
    command.args(extra);
    output(&mut command)
}

fn engine_ok(engine: &str, args: &[&str]) -> String {
    let out = output(engine_cmd(engine).args(args));
    ok(&out);
    stdout(&out)
}

/// The output of a command run in the image.
fn run_in(engine: &str, image: &str, command: &[&str]) -> Output {
    output(
        engine_cmd(engine)
            .args(["run", "--rm", image])
            .args(command)
            .stdin(Stdio::null()),
    )
}

fn label(engine: &str, image: &str, name: &str) -> String {
    engine_ok(
        engine,
        &[
            "inspect",
            "--type",
            "image",
            "--format",
            &format!("{{{{index .Config.Labels \"{name}\"}}}}"),
            image,
        ],
    )
    .trim()
    .to_string()
}

fn image_id(engine: &str, image: &str) -> String {
    engine_ok(
        engine,
        &["inspect", "--type", "image", "--format", "{{.Id}}", image],
    )
    .trim()
    .to_string()
}

const UP_TO_DATE: &str = "Image is up to date.\n";

fn plain_dockerfile(s: &Scratch, name: &str, marker: &str) -> PathBuf {
    s.file(
        name,
        &format!(
            "# a comment\nFROM {}\n\nRUN echo {marker} > /marker\n",
            base_image()
        ),
    )
}

fn build_then_up_to_date_then_no_cache(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("fresh");
    let df = plain_dockerfile(&s, "fresh.docker", "fresh");

    let first = build(&s, engine, &tag, &df, &["--quiet"]);
    ok(&first);
    assert_eq!(stdout(&first), "", "--quiet hides the engine's output");
    // The label is the SHA-1 of the preprocessed text, as the original script computes it.
    let expected = format!("FROM {}\nRUN echo fresh > /marker\n", base_image());
    let sha = cibox_container::dockerfile::sha1_hex(expected.as_bytes());
    assert_eq!(label(engine, &tag, "com.qemu.dockerfile-checksum"), sha);
    assert_eq!(
        label(engine, &tag, "org.cibox.inputs"),
        "",
        "no inputs: no label"
    );
    let id = image_id(engine, &tag);

    let again = build(&s, engine, &tag, &df, &[]);
    ok(&again);
    assert_eq!(stdout(&again), UP_TO_DATE);
    let quiet = build(&s, engine, &tag, &df, &["--quiet"]);
    ok(&quiet);
    assert_eq!(stdout(&quiet), "");
    assert_eq!(
        image_id(engine, &tag),
        id,
        "an up-to-date image is left alone"
    );

    let forced = build(&s, engine, &tag, &df, &["--no-cache"]);
    ok(&forced);
    assert!(
        !stdout(&forced).contains("up to date"),
        "{}",
        stdout(&forced)
    );
    assert_ne!(image_id(engine, &tag), id, "--no-cache rebuilds");
    let marker = run_in(engine, &tag, &["cat", "/marker"]);
    assert_eq!(stdout(&marker), "fresh\n");
    s.assert_tmp_empty();
}

fn up_to_date_decision_costs_one_engine_call(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("calls");
    let df = plain_dockerfile(&s, "calls.docker", "calls");
    ok(&build(&s, engine, &tag, &df, &["--quiet"]));

    // A wrapper in front of the engine logs every call.
    let real = which::which(engine).expect("engine on PATH");
    let log = s.path().join("calls.log");
    let bin = s.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let wrapper = bin.join(engine);
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // A detection cache of this test's own, empty at the start.
    let runtime = s.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();

    let mut command = s.cibox(engine);
    command
        .env("PATH", &path)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("CIBOX_ENGINE_CACHE_SECONDS")
        .arg("build")
        .arg("-t")
        .arg(&tag)
        .arg("-f")
        .arg(&df);
    let out = output(&mut command);
    ok(&out);
    assert_eq!(stdout(&out), UP_TO_DATE);
    let mut command = s.cibox(engine);
    command
        .env("PATH", &path)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("CIBOX_ENGINE_CACHE_SECONDS")
        .args(["check", "--quiet", &tag])
        .arg(&df);
    ok(&output(&mut command));

    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    // One detection, remembered for the second call, and one inspect per decision.
    assert_eq!(
        calls.len(),
        3,
        "detection once, then one inspect each: {calls:?}"
    );
    assert!(calls[0].starts_with("version"), "{calls:?}");
    assert!(calls[1].starts_with("image inspect") && calls[2].starts_with("image inspect"));
}

fn from_qemu_inlining_rebuilds_when_the_base_file_changes(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let name = unique("cibox-inline");
    let base_tag = format!("qemu/{name}");
    images.add(&base_tag);
    let base = s.file(
        &format!("{name}.docker"),
        &format!("FROM {}\nRUN echo one > /base\n", base_image()),
    );
    let top = s.file(
        "top.docker",
        &format!("FROM qemu/{name}\nRUN cat /base > /top\n"),
    );
    let top_tag = images.name("inline-top");

    ok(&build(&s, engine, &base_tag, &base, &["--quiet"]));
    ok(&build(&s, engine, &top_tag, &top, &["--quiet"]));
    assert_eq!(stdout(&run_in(engine, &top_tag, &["cat", "/top"])), "one\n");
    assert_eq!(stdout(&build(&s, engine, &top_tag, &top, &[])), UP_TO_DATE);

    // The same text found through $CIBOX_DOCKERFILES from another directory: same checksum.
    let elsewhere = s.file("other/top.docker", &std::fs::read_to_string(&top).unwrap());
    let out = output(
        s.cibox(engine)
            .env("CIBOX_DOCKERFILES", s.path())
            .args(["check", &top_tag])
            .arg(&elsewhere),
    );
    assert_eq!(stdout(&out), "Image is up to date\n", "{}", stderr(&out));
    let out = output(s.cibox(engine).args(["check", &top_tag]).arg(&elsewhere));
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "check").contains(&format!("{name}.docker")));

    // A change in the base file makes the top image stale.
    std::fs::write(
        &base,
        format!("FROM {}\nRUN echo two > /base\n", base_image()),
    )
    .unwrap();
    let out = output(s.cibox(engine).args(["check", &top_tag]).arg(&top));
    assert_eq!(stdout(&out), "Image needs updating\n");
    assert_eq!(out.status.code(), Some(1));
    ok(&build(&s, engine, &base_tag, &base, &["--quiet"]));
    let rebuilt = build(&s, engine, &top_tag, &top, &[]);
    ok(&rebuilt);
    assert!(!stdout(&rebuilt).contains("up to date"));
    assert_eq!(stdout(&run_in(engine, &top_tag, &["cat", "/top"])), "two\n");

    // The installed dockerfiles/ directory is searched too.
    let installed = s.file(
        "installed/x.docker",
        "FROM qemu/cibox-test-busybox\nRUN true\n",
    );
    let out = output(
        s.cibox(engine)
            .args(["check", "cibox-test/absent-image"])
            .arg(&installed),
    );
    assert_eq!(stdout(&out), "Image does not exist\n", "{}", stderr(&out));
    s.assert_tmp_empty();
}

/// The original docker.py, runnable, from `$CIBOX_REFERENCE_DOCKER_PY`; `None` (the test is
/// skipped, saying why) when the variable is unset or names no file.
fn reference_script() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("CIBOX_REFERENCE_DOCKER_PY").map(PathBuf::from) else {
        eprintln!(
            "skipped: set CIBOX_REFERENCE_DOCKER_PY to the original docker.py to compare with it"
        );
        return None;
    };
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: CIBOX_REFERENCE_DOCKER_PY={} is not a file",
            path.display()
        );
        None
    }
}

fn interoperates_with_the_reference_script_both_ways(engine: &str) {
    let Some(script) = reference_script() else {
        return;
    };
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let df = plain_dockerfile(&s, "interop.docker", "interop");
    let df_text = df.to_str().unwrap();

    let by_reference = images.name("by-reference");
    let out = reference(
        engine,
        &script,
        &["build", "-t", &by_reference, "-f", df_text],
    );
    ok(&out);
    assert_eq!(
        stdout(&build(&s, engine, &by_reference, &df, &[])),
        UP_TO_DATE
    );
    let out = output(s.cibox(engine).args(["check", &by_reference, df_text]));
    assert_eq!(stdout(&out), "Image is up to date\n");

    let by_cibox = images.name("by-cibox");
    ok(&build(&s, engine, &by_cibox, &df, &["--quiet"]));
    let out = reference(engine, &script, &["build", "-t", &by_cibox, "-f", df_text]);
    ok(&out);
    assert_eq!(stdout(&out), UP_TO_DATE, "{}", stderr(&out));
    let out = reference(engine, &script, &["check", &by_cibox, df_text]);
    assert_eq!(stdout(&out), "Image is up to date\n", "{}", stderr(&out));
}

fn extra_file_change_rebuilds(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("extra");
    let data = s.file("data/data.txt", "first\n");
    let df = s.file(
        "extra.docker",
        &format!("FROM {}\nCOPY data.txt /data.txt\n", base_image()),
    );
    let data_arg = data.to_str().unwrap();
    ok(&build(
        &s,
        engine,
        &tag,
        &df,
        &["--quiet", "--extra-files", data_arg],
    ));
    assert_eq!(
        stdout(&run_in(engine, &tag, &["cat", "/data.txt"])),
        "first\n"
    );
    let inputs = label(engine, &tag, "org.cibox.inputs");
    assert_eq!(inputs.len(), 64, "the inputs label holds a SHA-256");
    let again = build(&s, engine, &tag, &df, &["--extra-files", data_arg]);
    assert_eq!(stdout(&again), UP_TO_DATE);

    std::fs::write(&data, "second\n").unwrap();
    let out = output(s.cibox(engine).args(["check", &tag]).arg(&df));
    assert_eq!(
        stdout(&out),
        "Image needs updating\n",
        "check judges a cibox image on the inputs it recorded, as build does"
    );
    let rebuilt = build(&s, engine, &tag, &df, &["--extra-files", data_arg]);
    ok(&rebuilt);
    assert!(!stdout(&rebuilt).contains("up to date"));
    assert_eq!(
        stdout(&run_in(engine, &tag, &["cat", "/data.txt"])),
        "second\n"
    );

    // A missing extra file is an error before anything is built or created.
    let missing = images.name("extra-missing");
    let out = build(
        &s,
        engine,
        &missing,
        &df,
        &["--extra-files", data_arg, "/nonexistent/file.txt"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "build").contains("/nonexistent/file.txt"));
    let exists = output(engine_cmd(engine).args(["image", "inspect", &missing]));
    assert!(!exists.status.success(), "nothing was built");
    s.assert_tmp_empty();
}

fn pre_script_exit_statuses(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let df = s.file(
        "withpre.docker",
        &format!("FROM {}\nCOPY made-by-pre /made\n", base_image()),
    );
    s.script(
        "withpre.pre",
        "#!/bin/sh\necho pre-output\necho \"$PWD\" > made-by-pre\nexit \"${PRE_STATUS:-0}\"\n",
    );
    let run_with = |status: &str, tag: &str, quiet: bool| {
        let mut command = s.cibox(engine);
        command
            .env("PRE_STATUS", status)
            .args(["build", "-t", tag, "-f"])
            .arg(&df);
        if quiet {
            command.arg("--quiet");
        }
        output(&mut command)
    };

    let built = images.name("pre-ok");
    let out = run_with("0", &built, false);
    ok(&out);
    assert!(stdout(&out).contains("pre-output"));
    let made = stdout(&run_in(engine, &built, &["cat", "/made"]));
    assert!(
        made.contains("cibox-build.") && made.trim_end().ends_with("/context"),
        "the .pre script ran in the build context: {made}"
    );

    let skipped = images.name("pre-skip");
    let out = run_with("3", &skipped, true);
    ok(&out);
    assert_eq!(stdout(&out), "Skip\n");
    assert!(
        !output(engine_cmd(engine).args(["image", "inspect", &skipped]))
            .status
            .success()
    );

    let failed = images.name("pre-fail");
    let out = run_with("5", &failed, true);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out, "build");
    assert!(line.contains("withpre.pre") && line.contains("5"), "{line}");
    assert!(
        !output(engine_cmd(engine).args(["image", "inspect", &failed]))
            .status
            .success()
    );
    s.assert_tmp_empty();
}

fn include_executable_runs_in_the_container(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("with-tac");
    let df = s.file("tac.docker", &format!("FROM {}\nADD . /\n", base_image()));
    let out = build(
        &s,
        engine,
        &tag,
        &df,
        &[
            "--quiet",
            "--skip-binfmt",
            "--include-executable=/usr/bin/tac",
        ],
    );
    ok(&out);
    // busybox has no tac of its own at /usr/bin: this is the host's, with the host's libraries.
    let out = run_in(
        engine,
        &tag,
        &["sh", "-c", "printf 'a\\nb\\n' | /usr/bin/tac"],
    );
    ok(&out);
    assert_eq!(stdout(&out), "b\na\n");
    s.assert_tmp_empty();
}

/// A fake binfmt_misc directory with one entry.
fn binfmt_root(s: &Scratch, name: &str, entry: &str) -> PathBuf {
    let root = s.path().join("binfmt_misc");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(name), entry).unwrap();
    root
}

fn include_executable_by_binfmt_entry(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let df = s.file("tac.docker", &format!("FROM {}\nADD . /\n", base_image()));
    let root = binfmt_root(
        &s,
        "tac",
        "enabled\ninterpreter /opt/emulators/tac-interp\nflags: OC\noffset 0\nmagic 7f454c46\n",
    );
    let tag = images.name("binfmt");
    let out = output(
        s.cibox(engine)
            .env("CIBOX_BINFMT_MISC", &root)
            .args(["build", "--quiet", "-t", &tag, "-e", "/usr/bin/tac", "-f"])
            .arg(&df),
    );
    ok(&out);
    let out = run_in(
        engine,
        &tag,
        &["sh", "-c", "echo x | /opt/emulators/tac-interp"],
    );
    assert_eq!(stdout(&out), "x\n", "{}", stderr(&out));

    // Persistent (F): the kernel holds the binary; only the libraries go in.
    std::fs::write(
        root.join("tac"),
        "enabled\ninterpreter /opt/emulators/tac-interp\nflags: OCF\n",
    )
    .unwrap();
    let persistent = images.name("binfmt-f");
    let out = output(
        s.cibox(engine)
            .env("CIBOX_BINFMT_MISC", &root)
            .args([
                "build",
                "--quiet",
                "-t",
                &persistent,
                "-e",
                "/usr/bin/tac",
                "-f",
            ])
            .arg(&df),
    );
    ok(&out);
    let out = run_in(
        engine,
        &persistent,
        &[
            "sh",
            "-c",
            "ls /opt/emulators/tac-interp; ls /lib64/ld-linux-x86-64.so.2",
        ],
    );
    let listing = stdout(&out);
    assert!(
        !listing.contains("tac-interp") && listing.contains("ld-linux"),
        "{listing}{}",
        stderr(&out)
    );

    // No entry: a clear error, nothing built.
    std::fs::remove_file(root.join("tac")).unwrap();
    let none = images.name("binfmt-none");
    let out = output(
        s.cibox(engine)
            .env("CIBOX_BINFMT_MISC", &root)
            .args(["build", "-t", &none, "-e", "/usr/bin/tac", "-f"])
            .arg(&df),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "build").contains("no binfmt_misc entry for tac"));
    s.assert_tmp_empty();
}

fn changed_executable_and_user_rebuild(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("exe-change");
    let df = s.file("exe.docker", &format!("FROM {}\nADD . /\n", base_image()));
    let tool = s.path().join("tools/mytool");
    std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
    std::fs::copy("/usr/bin/tac", &tool).unwrap();
    let exe = format!("--include-executable={}", tool.display());
    ok(&build(
        &s,
        engine,
        &tag,
        &df,
        &["--quiet", "--skip-binfmt", &exe],
    ));
    assert_eq!(
        stdout(&build(&s, engine, &tag, &df, &["--skip-binfmt", &exe])),
        UP_TO_DATE
    );

    // Appending to an ELF file leaves it runnable and changes its content.
    let mut bytes = std::fs::read(&tool).unwrap();
    bytes.extend_from_slice(b"changed");
    std::fs::write(&tool, bytes).unwrap();
    let out = build(&s, engine, &tag, &df, &["--skip-binfmt", &exe]);
    ok(&out);
    assert!(
        !stdout(&out).contains("up to date"),
        "a changed executable rebuilds"
    );
    assert_eq!(
        stdout(&build(&s, engine, &tag, &df, &["--skip-binfmt", &exe])),
        UP_TO_DATE
    );

    // Adding the user is an input too; so are proxy settings.
    let out = build(&s, engine, &tag, &df, &["--skip-binfmt", &exe, "-u"]);
    ok(&out);
    assert!(!stdout(&out).contains("up to date"), "-u rebuilds");
    assert_eq!(
        stdout(&build(
            &s,
            engine,
            &tag,
            &df,
            &["--skip-binfmt", &exe, "-u"]
        )),
        UP_TO_DATE
    );
    let out = output(
        s.cibox(engine)
            .env("HTTP_PROXY", "http://proxy.invalid:3128")
            .args(["build", "-t", &tag, "--skip-binfmt", &exe, "-u", "-f"])
            .arg(&df),
    );
    ok(&out);
    assert!(
        !stdout(&out).contains("up to date"),
        "a proxy setting rebuilds"
    );
    let with_arg = [
        "--skip-binfmt",
        exe.as_str(),
        "--build-arg",
        "CIBOX_TEST_ARG=1",
    ];
    let out = build(&s, engine, &tag, &df, &with_arg);
    ok(&out);
    assert!(
        !stdout(&out).contains("up to date"),
        "a --build-arg rebuilds"
    );
    assert_eq!(stdout(&build(&s, engine, &tag, &df, &with_arg)), UP_TO_DATE);
    s.assert_tmp_empty();
}

/// The test registry (`host:port`), or `None` to skip; required with the engines.
fn test_registry() -> Option<String> {
    let registry = std::env::var("CIBOX_TEST_REGISTRY").ok();
    assert!(
        registry.is_some() || std::env::var("CIBOX_REQUIRE_ENGINES").is_err(),
        "no CIBOX_TEST_REGISTRY"
    );
    registry
}

fn push(engine: &str, image: &str) {
    engine_ok(engine, &["push", image]);
}

fn registry_bases_and_cache(engine: &str) {
    let Some(registry) = test_registry() else {
        return;
    };
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let name = unique("cibox-regbase");
    let base_tag = format!("qemu/{name}");
    let remote_base = format!("{registry}/qemu/{name}");
    images.add(&base_tag);
    images.add(&remote_base);
    let base = s.file(
        &format!("{name}.docker"),
        &format!("FROM {}\nRUN echo from-registry > /base\n", base_image()),
    );
    ok(&build(&s, engine, &base_tag, &base, &["--quiet"]));
    engine_ok(engine, &["tag", &base_tag, &remote_base]);
    push(engine, &remote_base);
    // Only the registry has the base now: the build works only if FROM was rewritten.
    engine_ok(engine, &["rmi", &base_tag, &remote_base]);

    let top = s.file(
        "top.docker",
        &format!("FROM qemu/{name}\nRUN cat /base > /top\n"),
    );
    let tag = images.name("regtop");
    let remote_top = format!("{registry}/{tag}");
    images.add(&remote_top);
    let out = build(&s, engine, &tag, &top, &["--quiet", "-r", &registry]);
    ok(&out);
    assert_eq!(
        stdout(&run_in(engine, &tag, &["cat", "/top"])),
        "from-registry\n"
    );

    // With the image itself in the registry, it is pulled and used as a cache source.
    engine_ok(engine, &["tag", &tag, &remote_top]);
    push(engine, &remote_top);
    engine_ok(engine, &["rmi", &remote_top]);
    let out = build(&s, engine, &tag, &top, &["--no-cache", "-r", &registry]);
    ok(&out);
    let pulled = output(engine_cmd(engine).args(["image", "inspect", &remote_top]));
    assert!(
        pulled.status.success(),
        "REGISTRY/TAG was pulled for --cache-from"
    );

    // A base the registry does not have: no rewrite, the local base is used.
    let local_name = unique("cibox-localbase");
    let local_tag = format!("qemu/{local_name}");
    images.add(&local_tag);
    let local_base = s.file(
        &format!("{local_name}.docker"),
        &format!("FROM {}\nRUN echo local > /base\n", base_image()),
    );
    ok(&build(&s, engine, &local_tag, &local_base, &["--quiet"]));
    let top2 = s.file(
        "top2.docker",
        &format!("FROM qemu/{local_name}\nRUN cat /base > /top\n"),
    );
    let tag2 = images.name("regtop2");
    ok(&build(
        &s,
        engine,
        &tag2,
        &top2,
        &["--quiet", "-r", &registry],
    ));
    assert_eq!(stdout(&run_in(engine, &tag2, &["cat", "/top"])), "local\n");
    s.assert_tmp_empty();
}

fn failed_build_is_one_line_and_leaves_nothing(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("fails");
    let df = s.file(
        "fails.docker",
        &format!("FROM {}\nRUN exit 7\n", base_image()),
    );
    let out = build(&s, engine, &tag, &df, &["--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out, "build");
    assert!(line.contains(&format!("{engine} build failed")), "{line}");
    s.assert_tmp_empty();
}

fn signals_remove_the_build_context(engine: &str) {
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let s = Scratch::new();
        let mut images = Images::new(engine);
        let tag = images.name("signal");
        let df = s.file("slow.docker", &format!("FROM {}\n", base_image()));
        s.script("slow.pre", "#!/bin/sh\ntouch started\nexec sleep 60\n");
        let mut child = s
            .cibox(engine)
            .args(["build", "--quiet", "-t", &tag, "-f"])
            .arg(&df)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let tmp = s.tmp();
        let started = wait_until(Duration::from_secs(20), || {
            std::fs::read_dir(&tmp)
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.path().join("context/started").exists())
        });
        assert!(started, "the .pre script never started");
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code));
        s.assert_tmp_empty();
    }
}

fn check_messages_and_statuses(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("check");
    let df = plain_dockerfile(&s, "check.docker", "check");
    let other = plain_dockerfile(&s, "other.docker", "other");
    let check = |args: &[&str]| output(s.cibox(engine).arg("check").args(args));
    let df_text = df.to_str().unwrap();

    let out = check(&[&tag, df_text]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("Image does not exist\n", Some(1))
    );
    ok(&build(&s, engine, &tag, &df, &["--quiet"]));
    let out = check(&[&tag]);
    assert_eq!(
        (stdout(&out), out.status.code()),
        (format!("Need a dockerfile for tag:{tag}\n"), Some(1))
    );
    let out = check(&[&tag, df_text]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("Image is up to date\n", Some(0))
    );
    let out = check(&["--quiet", &tag, df_text]);
    assert_eq!((stdout(&out).as_str(), out.status.code()), ("", Some(0)));
    let out = check(&[&tag, other.to_str().unwrap()]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("Image needs updating\n", Some(1))
    );
    let out = check(&["--quiet", &tag, other.to_str().unwrap()]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("Image needs updating\n", Some(1))
    );

    let out = check(&[&tag, "/nonexistent/x.docker"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(error_line(&out, "check").contains("/nonexistent/x.docker"));
    let out = check(&[&tag, "--checktype", "size"]);
    assert_eq!(out.status.code(), Some(2));
}

fn check_age_in_three_time_zones(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("age");
    let df = plain_dockerfile(&s, "age.docker", &unique("age"));
    ok(&build(&s, engine, &tag, &df, &["--quiet"]));
    let now = chrono::Utc::now();
    for tz in ["UTC", "Asia/Tokyo", "America/Los_Angeles"] {
        let age = |extra: &[&str]| {
            output(
                s.cibox(engine)
                    .env("TZ", tz)
                    .args(["check", &tag, "--checktype", "age"])
                    .args(extra),
            )
        };
        // A minute-old image is younger than 60 minutes everywhere (the original said "older"
        // east of UTC).
        let out = age(&[]);
        assert_eq!(stdout(&out), "Image less than 60 minutes old\n", "TZ={tz}");
        assert_eq!(out.status.code(), Some(0));
        let out = age(&["--quiet", "--olderthan", "30"]);
        assert_eq!(
            (stdout(&out).as_str(), out.status.code()),
            ("", Some(0)),
            "TZ={tz}"
        );
        // ... and older than 0 minutes everywhere (the original said "younger" west of UTC).
        let out = age(&["--olderthan", "0"]);
        assert_eq!(out.status.code(), Some(1), "TZ={tz}");
        let text = stdout(&out);
        let time = text
            .strip_prefix("Image created @ ")
            .and_then(|t| t.strip_suffix(" more than 0 minutes old\n"))
            .unwrap_or_else(|| panic!("TZ={tz}: {text}"));
        let created = chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S")
            .unwrap()
            .and_utc();
        let drift = (now - created).num_seconds().abs();
        assert!(drift < 600, "TZ={tz}: {time} is printed in UTC (now {now})");
    }
    if engine == "podman" {
        // An image from 1970 (podman can set the creation time).
        let old = images.name("age-old");
        let out = retrying_podman_race(|| {
            output(
                engine_cmd("podman")
                    .args([
                        "build",
                        "-q",
                        "--no-cache",
                        "--timestamp",
                        "0",
                        "-t",
                        &old,
                        "-f",
                    ])
                    .arg(&df)
                    .arg(s.path()),
            )
        });
        ok(&out);
        let out = output(s.cibox(engine).env("TZ", "America/Los_Angeles").args([
            "check",
            &old,
            "--checktype",
            "age",
        ]));
        assert_eq!(
            (stdout(&out).as_str(), out.status.code()),
            (
                "Image created @ 1970-01-01T00:00:00 more than 60 minutes old\n",
                Some(1)
            )
        );
    }
}

fn fetch_from_the_local_registry(engine: &str) {
    let Some(registry) = test_registry() else {
        return;
    };
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("fetch");
    let remote = format!("{registry}/{tag}");
    images.add(&remote);
    let df = plain_dockerfile(&s, "fetch.docker", "fetched");
    ok(&build(&s, engine, &tag, &df, &["--quiet"]));
    engine_ok(engine, &["tag", &tag, &remote]);
    push(engine, &remote);
    engine_ok(engine, &["rmi", &tag, &remote]);

    let out = output(s.cibox(engine).args(["fetch", "--quiet", &tag, &registry]));
    ok(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stdout(&run_in(engine, &tag, &["cat", "/marker"])),
        "fetched\n"
    );

    let missing = unique("cibox-test/not-in-registry");
    let out = output(
        s.cibox(engine)
            .args(["fetch", "--quiet", &missing, &registry]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "fetch").contains(&format!("{engine} pull failed")));
}

fn update_adds_an_executable(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("update");
    own_copy_of_base(engine, &tag);
    let root = binfmt_root(
        &s,
        "tac",
        "enabled\ninterpreter /opt/q/tac-interp\nflags: OC\n",
    );
    let out = output(s.cibox(engine).env("CIBOX_BINFMT_MISC", &root).args([
        "update",
        "--quiet",
        &tag,
        "--executable",
        "/usr/bin/tac",
    ]));
    ok(&out);
    let out = run_in(
        engine,
        &tag,
        &["sh", "-c", "printf '1\\n2\\n' | /opt/q/tac-interp"],
    );
    assert_eq!(stdout(&out), "2\n1\n", "{}", stderr(&out));

    // No binfmt_misc entry: a clear error.
    let out = output(
        s.cibox(engine)
            .env("CIBOX_BINFMT_MISC", s.path().join("nothing"))
            .args(["update", "--quiet", &tag, "--executable", "/usr/bin/tac"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "update").contains("no binfmt_misc entry for tac"));
    // A missing image: the engine's reason, one line.
    let out = output(
        s.cibox(engine)
            .args(["update", "--quiet", "cibox-test/no-such-image", "-u"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "update").contains(&format!("{engine} build failed")));
    s.assert_tmp_empty();
}

fn update_adds_the_user(engine: &str) {
    let s = Scratch::new();
    let mut images = Images::new(engine);
    let tag = images.name("update-user");
    own_copy_of_base(engine, &tag);
    ok(&output(
        s.cibox(engine).args(["update", "--quiet", &tag, "-u"]),
    ));
    let history = engine_ok(
        engine,
        &["history", "--no-trunc", "--format", "{{.CreatedBy}}", &tag],
    );
    let uid = nix::unistd::getuid().as_raw();
    let name = uzers::get_user_by_uid(uid)
        .unwrap()
        .name()
        .to_string_lossy()
        .into_owned();
    let line = cibox_container::dockerfile::user_line(uid, &name);
    let body = line.strip_prefix("RUN ").unwrap();
    assert!(history.contains(body), "history: {history}");

    // The line works in a busybox image, which has adduser but no useradd.
    let line = cibox_container::dockerfile::user_line(4321, "ciboxtester");
    let body = line.strip_prefix("RUN ").unwrap();
    let out = run_in(
        engine,
        &tag,
        &["sh", "-c", &format!("{body} && id -u ciboxtester")],
    );
    assert_eq!(
        stdout(&out).lines().last(),
        Some("4321"),
        "{}",
        stderr(&out)
    );
}

fn cc_compiles_and_returns_the_compiler_status(engine: &str) {
    let Some(image) = cc_image(engine) else {
        return;
    };
    let s = Scratch::new();
    let src = s.path().join("src");
    // QEMU's usual layout: the build directory inside the source tree.
    let build_dir = src.join("build");
    std::fs::create_dir_all(&build_dir).unwrap();
    s.file(
        "src/hello.c",
        "#include <stdio.h>\nint main(void) { puts(GREETING); return 0; }\n",
    );
    s.file("src/bad.c", "int main(void) { return undeclared; }\n");
    let cc = |args: &[&str]| {
        output(
            s.cibox(engine)
                .current_dir(&build_dir)
                .args(["cc", "-i", &image, "-s"])
                .arg(&src)
                .arg(&build_dir) // the current directory again: skipped, not mounted twice
                .arg("--")
                .args(args),
        )
    };
    let hello = src.join("hello.c");
    let out = cc(&[
        "-DGREETING=\"hi from the image\"",
        "-o",
        "hello",
        hello.to_str().unwrap(),
    ]);
    ok(&out);
    let binary = build_dir.join("hello");
    let meta = std::fs::metadata(&binary).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        nix::unistd::getuid().as_raw(),
        "written as the current user"
    );
    let ran = output(&mut Command::new(&binary));
    assert_eq!(stdout(&ran), "hi from the image\n");

    let out = cc(&["-c", src.join("bad.c").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "gcc's own status");
    assert!(stderr(&out).contains("undeclared"));
    let out = output(
        s.cibox(engine)
            .current_dir(&build_dir)
            .args(["cc", "-i", &image, "--cc", "sh", "--", "-c", "exit 42"]),
    );
    assert_eq!(out.status.code(), Some(42));

    let out = output(s.cibox(engine).current_dir(&build_dir).args([
        "cc",
        "-i",
        "cibox-test/no-compiler-here",
        "--",
        "-v",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out, "cc").contains("does not exist"));
}

/// Mistakes that need no engine: one line, exit 1 (2 for usage), nothing left behind.
#[test]
fn build_user_mistakes() {
    let s = Scratch::new();
    let df = s.file("ok.docker", "FROM scratch\n");
    let df_text = df.to_str().unwrap();
    let run = |args: &[&str], path: Option<&str>| {
        let mut command = cibox();
        command
            .env("TMPDIR", s.tmp())
            .args(args)
            .stdin(Stdio::null());
        if let Some(path) = path {
            command.env("PATH", path);
        }
        output(&mut command)
    };
    let out = run(&["build", "-f", df_text], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("-t"));
    let out = run(&["build", "-t", "cibox-test/x"], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));

    let out = run(
        &["build", "-t", "cibox-test/x", "-f", "/nonexistent/d.docker"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "cibox build: cannot read Dockerfile /nonexistent/d.docker: No such file or directory (os error 2)\n"
    );
    let out = run(
        &[
            "build",
            "-t",
            "cibox-test/x",
            "-f",
            df_text,
            "--extra-files",
            "/nonexistent/e",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).contains("/nonexistent/e"));

    let empty = s.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = run(
        &[
            "--engine",
            "podman",
            "build",
            "-t",
            "cibox-test/x",
            "-f",
            df_text,
        ],
        Some(empty.to_str().unwrap()),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(
        stderr(&out).contains("no working container engine"),
        "{}",
        stderr(&out)
    );
    s.assert_tmp_empty();
}
