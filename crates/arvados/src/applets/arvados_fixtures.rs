//! `arvados-fixtures`: prints the fixture records of one kind as JSON, by fixture name, the
//! way Arvados' test helper hands them to a test (`fixture('collections')['foo_file']`). The
//! `run_test_server` module `--install` writes answers `fixture()` and `auth_token()` from it;
//! it reads the built-in set, or with `--fixtures DIR` the same YAML files `start_api
//! --fixtures DIR` loads, so the two always agree.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use serde_json::{Map, Value};

use crate::api::{fixture_files, fixtures};
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Print the API server's fixture records of one kind, by fixture name, as JSON",
    after_help = "KIND is a table: users, api_client_authorizations, collections, groups, \
links, repositories (with --fixtures, whatever the files hold). The answer is one JSON object \
mapping each fixture name to its record, as `start_api` serves it.\n\n\
Exit status:\n  0  printed\n  1  --fixtures DIR cannot be read\n  2  usage error, or a KIND \
the fixture set does not hold"
)]
struct FixturesArgs {
    /// The fixture table (collections, groups, api_client_authorizations, ...)
    kind: String,
    /// Read an Arvados checkout's fixture files (as `start_api --fixtures DIR` does) instead
    /// of the built-in set
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<FixturesArgs>()?;
    let tables: Vec<(String, Vec<Value>)> = match &args.fixtures {
        Some(dir) => fixture_files::load(dir)
            .with_context(|| format!("reading the fixtures of {}", dir.display()))?
            .into_iter()
            .map(|(kind, records)| (kind, records.into_values().map(|r| (*r).clone()).collect()))
            .collect(),
        None => fixtures::all()
            .into_iter()
            .map(|(kind, records)| (kind.to_string(), records))
            .collect(),
    };
    let Some((_, records)) = tables.iter().find(|(kind, _)| *kind == args.kind) else {
        let kinds: Vec<&str> = tables.iter().map(|(kind, _)| kind.as_str()).collect();
        return Err(clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            format!(
                "no fixture kind {:?} (the set holds: {})\n",
                args.kind,
                kinds.join(", ")
            ),
        )
        .with_cmd(&inv.command())
        .into());
    };
    let mut by_name = Map::new();
    for record in records {
        if let Some(name) = record.get("fixture_name").and_then(Value::as_str) {
            by_name.insert(name.to_string(), record.clone());
        }
    }
    println!("{}", Value::Object(by_name));
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "arvados-fixtures",
        about: "Print the API server's fixture records of one kind, by fixture name, as JSON",
        aliases: &[],
        command: FixturesArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "arvados-fixtures",
        environment: &[],
        files: &[&[("DIR/services/api/test/fixtures/*.yml, or DIR/*.yml", "with --fixtures: the fixture files read")]],
    }
}
