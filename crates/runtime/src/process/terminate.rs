//! Liveness, identity and termination of processes by pid.

use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Whether `pid` names a running process. A zombie counts as gone; a zombie that is our own
/// child is reaped on the way.
pub fn is_running(pid: Pid) -> bool {
    if pid.as_raw() <= 0 {
        return false;
    }
    // Reap it if it is our child and has exited (ECHILD when it is not ours: ignored).
    if let Ok(status) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        if !matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
            return false;
        }
    }
    match kill(pid, None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    match proc_stat(pid) {
        Some(stat) => !matches!(stat.state, 'Z' | 'X' | 'x'),
        // No /proc entry although kill(0) succeeded: raced with its exit.
        None => false,
    }
}

struct ProcStat {
    state: char,
    process_group: i32,
    start_ticks: u64,
}

fn proc_stat(pid: Pid) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); pgrp is field 5, starttime field 22.
    let state = fields.first()?.chars().next()?;
    let process_group = fields.get(5 - 3)?.parse().ok()?;
    let start_ticks = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat {
        state,
        process_group,
        start_ticks,
    })
}

/// The live (not zombie) processes in process group `pgid`, read from `/proc`.
pub fn process_group_members(pgid: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|&pid| {
            proc_stat(pid).is_some_and(|s| {
                s.process_group == pgid.as_raw() && !matches!(s.state, 'Z' | 'X' | 'x')
            })
        })
        .collect()
}

fn clock_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// When process `pid` started, in wall-clock time (10 ms resolution), or `None` when there is
/// no such process.
pub fn start_time(pid: Pid) -> Option<SystemTime> {
    let stat = proc_stat(pid)?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    let since_boot = Duration::from_secs(stat.start_ticks / ticks_per_second)
        + Duration::from_nanos(
            (stat.start_ticks % ticks_per_second) * 1_000_000_000 / ticks_per_second,
        );
    // Boot time from the two clocks, which is far more precise than /proc/stat's btime.
    let boot = SystemTime::now().checked_sub(clock_time(libc::CLOCK_BOOTTIME))?;
    Some(boot + since_boot)
}

/// How a process given to [`terminate`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It was not running when we looked.
    AlreadyGone,
    /// It exited after SIGTERM.
    Terminated,
    /// It had to be sent SIGKILL, and is gone now.
    Killed,
    /// It is still there after SIGKILL (stuck in the kernel, or not ours to signal).
    Survived,
}

/// Sends SIGTERM to every pid at once, polls every 2 ms until all are gone or `grace` has
/// passed, then sends SIGKILL to the rest and waits up to 2 s more. Returns how each ended,
/// in the order given.
///
/// The caller is responsible for the pids naming the processes it means (see
/// [`pid_file_check`](super::pid_file_check)). Init, our own process and our parent are never
/// signalled, whatever is asked: they are reported [`Ending::Survived`].
pub fn terminate(pids: &[Pid], grace: Duration) -> Vec<Ending> {
    let mut endings: Vec<Option<Ending>> = pids
        .iter()
        .map(|&pid| {
            if is_protected_pid(pid) {
                return Some(Ending::Survived); // never signalled
            }
            if !is_running(pid) {
                return Some(Ending::AlreadyGone);
            }
            match kill(pid, Signal::SIGTERM) {
                Err(Errno::ESRCH) => Some(Ending::AlreadyGone),
                _ => None,
            }
        })
        .collect();
    let poll = |endings: &mut Vec<Option<Ending>>, ending: Ending, deadline: Instant| loop {
        let mut pending = false;
        for (i, &pid) in pids.iter().enumerate() {
            if endings[i].is_none() {
                if is_running(pid) {
                    pending = true;
                } else {
                    endings[i] = Some(ending);
                }
            }
        }
        if !pending || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    poll(&mut endings, Ending::Terminated, Instant::now() + grace);
    if endings.iter().any(Option::is_none) {
        for (i, &pid) in pids.iter().enumerate() {
            if endings[i].is_none() {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        poll(
            &mut endings,
            Ending::Killed,
            Instant::now() + Duration::from_secs(2),
        );
    }
    endings
        .into_iter()
        .map(|e| e.unwrap_or(Ending::Survived))
        .collect()
}

/// Whether `pid` may never be signalled whatever a pid file says: pid 0, 1 and negative pids
/// (process groups, init), our own process and our parent.
pub fn is_protected_pid(pid: Pid) -> bool {
    pid.as_raw() <= 1 || pid == Pid::this() || pid == Pid::parent()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn start_time_of_self_is_in_the_past() {
        let me = Pid::this();
        let started = start_time(me).unwrap();
        let now = SystemTime::now();
        assert!(started <= now + Duration::from_secs(1));
        assert!(now.duration_since(started).unwrap() < Duration::from_secs(3600));
        assert!(is_running(me));
    }

    #[test]
    fn terminate_stops_a_child_and_reports_it() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        assert!(is_running(pid));
        let endings = terminate(&[pid], Duration::from_secs(5));
        assert_eq!(endings, vec![Ending::Terminated]);
        assert!(!is_running(pid));
        assert_eq!(
            terminate(&[pid], Duration::from_secs(1)),
            vec![Ending::AlreadyGone]
        );
        let _ = child.wait();
    }

    #[test]
    fn init_ourselves_and_our_parent_are_never_signalled() {
        let endings = terminate(
            &[
                Pid::from_raw(1),
                Pid::this(),
                Pid::parent(),
                Pid::from_raw(0),
            ],
            Duration::from_millis(10),
        );
        assert_eq!(endings, vec![Ending::Survived; 4]);
    }

    #[test]
    fn process_group_members_lists_a_group() {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & echo ready; wait"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        let pgid = Pid::from_raw(child.id() as i32);
        let members = process_group_members(pgid);
        assert_eq!(members.len(), 2, "{members:?}");
        assert!(members.contains(&pgid));
        assert!(!process_group_members(Pid::this()).contains(&pgid));
        let _ = kill(Pid::from_raw(-pgid.as_raw()), Signal::SIGKILL);
        let _ = child.wait();
    }

    #[test]
    fn terminate_escalates_to_sigkill() {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; exec sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let endings = terminate(&[pid], Duration::from_millis(100));
        assert_eq!(endings, vec![Ending::Killed]);
        let _ = child.wait();
    }
}
