//! QEMU's own call shapes, made as QEMU makes them, against real podman and Docker:
//! configure's `$python docker.py --engine E probe` and its cross-compiler line
//! `$python docker.py --engine E cc --cc CC -i IMAGE -s SRC -- ARGS` through the Python stub
//! `cibox --install` writes; the `debian-toolchain-run` rule whose missing `;` hands `fetch` a
//! second command as extra arguments; and images shared with the original script, judged
//! alike by `cibox build` and `cibox check`.
//!
//! Tests that compare with the original script take it from `CIBOX_REFERENCE_DOCKER_PY` and
//! are skipped, with a note, when it is unset. Every test uses image names and directories of
//! its own and removes the images it made.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cibox_testsupport::engine_tests;
use cibox_testsupport::engines::*;

engine_tests!(
    stub_probes_the_engine,
    stub_cross_compile_line_keeps_the_compiler_status,
    stub_passes_arguments_unchanged,
    fetch_ignores_a_second_command_like_the_original,
    image_built_by_the_original_with_user_is_up_to_date_for_both,
    changed_extra_file_is_stale_for_both,
    exec_copy_test_runs_the_executable_from_the_image_root,
);

/// A directory `cibox --install` filled: links, and docker.py as the Python stub.
fn installed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = output(cibox().arg("--install").arg(dir.path()));
    assert!(out.status.success(), "install: {}", stderr(&out));
    dir
}

/// `python3 DIR/docker.py ARGS`, as configure runs it.
fn python_stub(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(dir.join("docker.py"))
        .args(args)
        .stdin(Stdio::null());
    command
}

fn engine_ok(engine: &str, args: &[&str]) -> String {
    let out = output(engine_cmd(engine).args(args));
    ok(&out);
    stdout(&out)
}

/// The original docker.py from `CIBOX_REFERENCE_DOCKER_PY`; `None` (test skipped) when unset.
fn reference_docker_py() -> Option<PathBuf> {
    match std::env::var_os("CIBOX_REFERENCE_DOCKER_PY") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!("skipped: CIBOX_REFERENCE_DOCKER_PY is not set (the original docker.py)");
            None
        }
    }
}

#[test]
fn stub_runs_cibox_as_docker_py_directly_and_through_python() {
    let dir = installed();
    let direct = output(Command::new(dir.path().join("docker.py")).arg("--bogus"));
    let through_python = output(&mut python_stub(dir.path(), &["--bogus"]));
    for out in [direct, through_python] {
        // Dispatch saw the name docker.py: the usage error is docker.py's.
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).starts_with("docker.py: unknown option '--bogus'"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn stub_whose_cibox_is_gone_says_so_and_exits_1() {
    let place = tempfile::tempdir().unwrap();
    let moved = place.path().join("cibox");
    std::fs::hard_link(cibox_path(), &moved)
        .or_else(|_| std::fs::copy(cibox_path(), &moved).map(|_| ()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = output(Command::new(&moved).arg("--install").arg(dir.path()));
    ok(&out);
    std::fs::remove_file(&moved).unwrap();
    let out = output(&mut python_stub(
        dir.path(),
        &["--engine", "podman", "probe"],
    ));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "docker.py: no executable cibox at {} any more",
            moved.display()
        )),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
}

fn stub_probes_the_engine(engine: &str) {
    let dir = installed();
    let out = output(&mut python_stub(dir.path(), &["--engine", engine, "probe"]));
    ok(&out);
    assert_eq!(stdout(&out), format!("{engine}\n"));
    if engine == "podman" {
        // auto asks podman first, as the original does.
        let out = output(
            python_stub(dir.path(), &["--engine", "auto", "probe"])
                .env("CIBOX_ENGINE_CACHE_SECONDS", "0"),
        );
        ok(&out);
        assert_eq!(stdout(&out), "podman\n");
    }
}

fn stub_cross_compile_line_keeps_the_compiler_status(engine: &str) {
    let Some(image) = cc_image(engine) else {
        return;
    };
    let dir = installed();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let build = work.path().join("build");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(src.join("answer.h"), "#define ANSWER 42\n").unwrap();
    std::fs::write(
        build.join("x.c"),
        format!(
            "#include \"{}\"\nint answer(void) {{ return ANSWER; }}\n",
            src.join("answer.h").display()
        ),
    )
    .unwrap();
    std::fs::write(build.join("bad.c"), "int f(void) { return undeclared; }\n").unwrap();
    let src_text = src.to_str().unwrap();
    // configure's line: $python docker.py --engine E cc --cc CC -i IMAGE -s SRC -- ARGS
    let cc = |args: &[&str]| {
        let mut line = vec!["--engine", engine, "cc", "--cc", "gcc", "-i", &image];
        line.extend(["-s", src_text, "--"]);
        line.extend(args);
        output(python_stub(dir.path(), &line).current_dir(&build))
    };
    let out = cc(&["-c", "x.c", "-o", "x.o"]);
    ok(&out);
    assert!(build.join("x.o").is_file(), "no x.o");
    let out = cc(&["-c", "bad.c", "-o", "bad.o"]);
    assert_eq!(out.status.code(), Some(1), "gcc's own status");
    assert!(stderr(&out).contains("undeclared"), "{}", stderr(&out));
    assert!(!build.join("bad.o").exists());
}

fn stub_passes_arguments_unchanged(engine: &str) {
    let dir = installed();
    let label = unique("stub-args");
    let _guard = LabelGuard::new(engine, &label);
    let tricky = [
        "two words",
        "it's \"quoted\"",
        "",
        "back\\slash $HOME *",
        "--",
        "--not-an-option",
    ];
    let label_arg = format!("cibox.test={label}");
    let image = base_image();
    let mut line = vec![
        "--engine", engine, "run", "--label", &label_arg, &image, "printf", "[%s]\\n",
    ];
    line.extend(tricky);
    let out = output(&mut python_stub(dir.path(), &line));
    ok(&out);
    let expected: String = tricky.iter().map(|a| format!("[{a}]\n")).collect();
    assert_eq!(stdout(&out), expected);
}

/// QEMU's `debian-toolchain-run` rule, missing its `;`, runs
/// `docker.py --engine E fetch qemu/X REG docker.py --engine E update qemu/X --add-current-user PREPARE`
/// as one command: the original fetches and ignores the rest, and so must cibox.
fn fetch_ignores_a_second_command_like_the_original(engine: &str) {
    let Ok(registry) = std::env::var("CIBOX_TEST_REGISTRY") else {
        assert!(
            std::env::var("CIBOX_REQUIRE_ENGINES").is_err(),
            "no CIBOX_TEST_REGISTRY"
        );
        return;
    };
    let dir = installed();
    let mut images = Images::new(engine);
    let tag = images.name("toolchain");
    let remote = format!("{registry}/{tag}");
    images.add(&remote);
    own_copy_of_base(engine, &remote);
    let pushed = engine_ok(
        engine,
        &["image", "inspect", "--format", "{{.Id}}", &remote],
    );
    engine_ok(engine, &["push", &remote]);
    engine_ok(engine, &["rmi", &remote]);

    let out = output(&mut python_stub(
        dir.path(),
        &[
            "--engine",
            engine,
            "fetch",
            &tag,
            &registry,
            "docker.py",
            "--engine",
            engine,
            "update",
            &tag,
            "--add-current-user",
            "PREPARE",
        ],
    ));
    ok(&out);
    let ignored: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("cibox fetch: ignoring extra arguments"))
        .map(str::to_string)
        .collect();
    assert_eq!(ignored.len(), 1, "{}", stderr(&out));
    // Everything after fetch's two positionals is the second command, ignored whole: its
    // `--engine E` too, though cibox defines `--engine` (argparse leaves it to the tail).
    assert!(
        ignored[0].ends_with(&format!(
            ": docker.py --engine {engine} update {tag} --add-current-user PREPARE"
        )),
        "{}",
        ignored[0]
    );
    // Fetched and tagged with its local name.
    let ours = engine_ok(engine, &["image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_eq!(ours, pushed);

    // The Makefile's quiet form: fetch's own --quiet, and the second command's --quiet and
    // --engine in the tail (once refused: "--quiet cannot be used multiple times").
    let out = output(&mut python_stub(
        dir.path(),
        &[
            "--engine",
            engine,
            "fetch",
            "--quiet",
            &tag,
            &registry,
            "docker.py",
            "--engine",
            engine,
            "update",
            "--quiet",
            &tag,
            "--add-current-user",
        ],
    ));
    ok(&out);
    assert_eq!(stderr(&out), "", "--quiet: nothing said about the tail");
    // Without fetch's own --quiet the one line names the whole tail, its --quiet included.
    let out = output(&mut python_stub(
        dir.path(),
        &[
            "--engine",
            engine,
            "fetch",
            &tag,
            &registry,
            "docker.py",
            "--engine",
            engine,
            "update",
            "--quiet",
            &tag,
        ],
    ));
    ok(&out);
    let err = stderr(&out);
    let ignored: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("cibox fetch: ignoring extra arguments"))
        .collect();
    assert_eq!(ignored.len(), 1, "{}", stderr(&out));
    assert!(
        ignored[0].ends_with(&format!(
            ": docker.py --engine {engine} update --quiet {tag}"
        )),
        "{}",
        ignored[0]
    );
    // An option of fetch's own given twice before the tail: the last counts, as in argparse.
    let out = output(&mut python_stub(
        dir.path(),
        &[
            "--engine", engine, "fetch", "--quiet", "--quiet", &tag, &registry,
        ],
    ));
    ok(&out);

    // --quiet: nothing about the ignored arguments, and a failing pull is one line.
    let missing = unique("cibox-test/not-in-registry");
    let out = output(&mut python_stub(
        dir.path(),
        &[
            "--engine", engine, "fetch", "--quiet", &missing, &registry, "x",
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("cibox fetch: {engine} pull failed")),
        "{err}"
    );
}

fn dockerfile(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("FROM {}\n{body}\n", base_image())).unwrap();
    path
}

fn image_built_by_the_original_with_user_is_up_to_date_for_both(engine: &str) {
    let Some(script) = reference_docker_py() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut images = Images::new(engine);
    let tag = images.name("original-user");
    let df = dockerfile(work.path(), "user.docker", "RUN echo original > /marker");
    let df_text = df.to_str().unwrap();
    let out = reference(engine, &script, &["build", "-t", &tag, "-f", df_text, "-u"]);
    ok(&out);
    let id = engine_ok(engine, &["image", "inspect", "--format", "{{.Id}}", &tag]);

    let out = output(cibox().args(["--engine", engine, "check", &tag, df_text]));
    ok(&out);
    assert_eq!(stdout(&out), "Image is up to date\n");
    for extra in [&["-u"][..], &[][..]] {
        let out = output(
            cibox()
                .args(["--engine", engine, "build", "-t", &tag, "-f", df_text])
                .args(extra),
        );
        ok(&out);
        assert_eq!(stdout(&out), "Image is up to date.\n", "build {extra:?}");
    }
    let after = engine_ok(engine, &["image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_eq!(id, after, "the image was rebuilt");
}

fn changed_extra_file_is_stale_for_both(engine: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut images = Images::new(engine);
    let tag = images.name("extra-stale");
    let extra = work.path().join("payload.txt");
    std::fs::write(&extra, "one\n").unwrap();
    let df = dockerfile(work.path(), "extra.docker", "COPY payload.txt /payload.txt");
    let df_text = df.to_str().unwrap();
    let extra_text = extra.to_str().unwrap();
    let build = || {
        output(cibox().args([
            "--engine",
            engine,
            "build",
            "-t",
            &tag,
            "-f",
            df_text,
            "--extra-files",
            extra_text,
        ]))
    };
    let check = || output(cibox().args(["--engine", engine, "check", &tag, df_text]));
    ok(&build());
    let out = check();
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "Image is up to date\n")
    );
    let out = build();
    assert_eq!(stdout(&out), "Image is up to date.\n");

    let old = engine_ok(engine, &["image", "inspect", "--format", "{{.ID}}", &tag]);
    std::fs::write(&extra, "two\n").unwrap();
    let out = check();
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(1), "Image needs updating\n"),
        "{}",
        stderr(&out)
    );
    let out = build();
    ok(&out);
    assert!(
        !stdout(&out).contains("Image is up to date"),
        "{}",
        stdout(&out)
    );
    let out = check();
    assert_eq!(stdout(&out), "Image is up to date\n", "{}", stderr(&out));
    // The rebuild removed the image it replaced (nothing else named or used it).
    let gone = output(engine_cmd(engine).args(["image", "inspect", old.trim()]));
    assert!(
        !gone.status.success(),
        "the replaced image {old} is still there"
    );
}

/// QEMU's `make docker-exec-copy-test-qemu-hello`, as tests/docker/Makefile.include runs it:
/// in the directory holding `qemu-hello`, `docker.py build -t TAG -f empty.docker --quiet
/// --no-cache --include-executable=qemu-hello --skip-binfmt`, then `docker.py run TAG
/// /qemu-hello -version`. The original puts a relative executable at the image's root, with
/// its libraries; here `qemu-hello` is the host's (dynamically linked) echo, so the image, built
/// `FROM scratch`, runs it only with those libraries in place.
fn exec_copy_test_runs_the_executable_from_the_image_root(engine: &str) {
    let dir = installed();
    let work = tempfile::tempdir().unwrap();
    let mut images = Images::new(engine);
    let tag = images.name("exec-copy-test-qemu-hello");
    std::fs::copy("/bin/echo", work.path().join("qemu-hello")).unwrap();
    // QEMU's tests/docker/dockerfiles/empty.docker.
    let empty = work.path().join("empty.docker");
    std::fs::write(&empty, "FROM scratch\nADD . /\n").unwrap();
    let out = output(
        python_stub(
            dir.path(),
            &[
                "--engine",
                engine,
                "build",
                "-t",
                &tag,
                "-f",
                empty.to_str().unwrap(),
                "--quiet",
                "--no-cache",
                "--include-executable=qemu-hello",
                "--skip-binfmt",
            ],
        )
        .current_dir(work.path()),
    );
    ok(&out);
    let out = output(
        python_stub(
            dir.path(),
            &["--engine", engine, "run", &tag, "/qemu-hello", "-version"],
        )
        .current_dir(work.path()),
    );
    ok(&out);
    assert_eq!(stdout(&out), "-version\n", "{}", stderr(&out));
}
