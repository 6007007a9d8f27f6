//! What the benchmark ran on, and CPU pinning.

use std::process::Command;

/// `Cpus_allowed_list` of a process on this machine (`None` if not visible).
pub fn cpus_allowed(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

/// Restricts the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        panic!("pinning a benchmark thread to CPU {cpu}: {e}");
    }
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines().next().map(|l| l.trim().to_string())
}

/// One paragraph describing the machine and the moment.
pub fn describe() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.0} GiB", kb / 1024.0 / 1024.0)
        });
    let kernel = first_line("uname", &["-sr"]).unwrap_or_else(|| "unknown".into());
    let virt = if cpuinfo.contains(" hypervisor") {
        ", virtual machine"
    } else {
        ""
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    let rustc = first_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".into());
    vec![
        ("CPU".into(), format!("{model}, {cpus} CPUs{virt}")),
        ("memory".into(), mem_gib),
        ("OS".into(), kernel),
        ("Rust".into(), format!("{rustc}, release build")),
        ("load average at start (1, 5, 15 min)".into(), load),
    ]
}

/// Local server processes (by command name) pinned to one CPU, restored to
/// their own CPU sets when dropped (also when the benchmark panics).
///
/// New PostgreSQL backends inherit the postmaster's CPU set, so connections
/// opened while this lives run on the pinned CPU too. Processes that cannot
/// be pinned (not ours, gone) are skipped with a note on stderr.
pub struct PinnedServers {
    saved: Vec<(rustix::thread::Pid, rustix::thread::CpuSet)>,
}

impl PinnedServers {
    /// Pins every process whose command name is one of `names` to `cpu`.
    pub fn pin(names: &[&str], cpu: usize) -> Self {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        let mut saved = Vec::new();
        for raw in server_pids(names) {
            let Some(pid) = rustix::thread::Pid::from_raw(raw) else {
                continue;
            };
            let Ok(own) = rustix::thread::sched_getaffinity(Some(pid)) else {
                continue;
            };
            match rustix::thread::sched_setaffinity(Some(pid), &set) {
                Ok(()) => saved.push((pid, own)),
                Err(e) => eprintln!("bench: could not pin pid {raw} to CPU {cpu}: {e}"),
            }
        }
        PinnedServers { saved }
    }

    /// How many processes were pinned.
    pub fn count(&self) -> usize {
        self.saved.len()
    }
}

impl Drop for PinnedServers {
    fn drop(&mut self) {
        for (pid, own) in &self.saved {
            // A process that ended meanwhile has nothing to restore.
            let _ = rustix::thread::sched_setaffinity(Some(*pid), own);
        }
    }
}

/// Pids of the processes whose `/proc/<pid>/comm` is one of `names`.
fn server_pids(names: &[&str]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| names.contains(&comm.trim()))
        })
        .collect()
}
