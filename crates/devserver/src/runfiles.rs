//! The later devserver's start-up files for test harnesses: `--pidfile` (our pid) and
//! `--portfile` (the bound port), each the bare number without a newline, as the devserver
//! wrote them (its integration test checks `pid.isdigit()`), written whole (a temp file
//! renamed into place) once the server listens, and removed when it stops.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The files written; removed on drop.
#[derive(Debug, Default)]
pub struct RunFiles {
    written: Vec<PathBuf>,
}

fn write_whole(path: &Path, content: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, content.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

impl RunFiles {
    /// Writes the pid file and the port file that are asked for.
    pub fn write(
        pidfile: Option<&Path>,
        portfile: Option<&Path>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let mut files = RunFiles::default();
        if let Some(p) = pidfile {
            write_whole(p, &std::process::id().to_string())?;
            files.written.push(p.to_path_buf());
        }
        if let Some(p) = portfile {
            write_whole(p, &port.to_string())?;
            files.written.push(p.to_path_buf());
        }
        Ok(files)
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        for p in &self.written {
            let _ = std::fs::remove_file(p);
        }
    }
}
