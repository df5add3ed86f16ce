//! What `/proc` says about a process and the machine: resident memory (`VmRSS`), CPU time
//! (`utime + stime`), core count, CPU model, kernel.

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ; 100 on every Linux we run on).
const TICKS_PER_SEC: f64 = 100.0;

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU seconds of `pid` so far (`/proc/<pid>/stat` fields 14 and 15),
/// counting its threads and waited-for children (fields 16 and 17 are left out).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_user_system(pid).map(|(user, system)| user + system)
}

/// User and system CPU seconds of `pid` so far, apart (the system part is the kernel's work
/// for it: on loopback, most of it the TCP send and receive paths).
pub fn cpu_user_system(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field 14 is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / TICKS_PER_SEC, stime / TICKS_PER_SEC))
}

/// CPU seconds of this process.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// CPU seconds of `pid`, or 0 when it is unknown or gone.
pub fn cpu_or_zero(pid: Option<u32>) -> f64 {
    pid.and_then(cpu_seconds).unwrap_or(0.0)
}

/// CPU seconds of every process in `pids` together (the nodes of a cluster), 0 for one that
/// is unknown or gone.
pub fn cpu_sum(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_or_zero(Some(p))).sum()
}

/// Resident memory of every process in `pids` together, KiB; 0 when one of them is unknown
/// (a partial sum would read as a drop in memory).
pub fn rss_sum_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|&p| rss_kib(p))
        .sum::<Option<u64>>()
        .filter(|_| !pids.is_empty())
        .unwrap_or(0)
}

/// The machine in one line: cores, CPU model, kernel.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown kernel".into());
    format!("{cores} cores (nproc), {model}, Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(machine().contains("cores"));
    }

    #[test]
    fn sums_over_processes() {
        let pid = std::process::id();
        let one = rss_kib(pid).unwrap();
        let two = rss_sum_kib(&[pid, pid]);
        // Two readings of a live process: about twice one (it may grow a little in between).
        assert!(
            two >= 2 * one - one / 10 && two <= 2 * one + one / 10,
            "{one} {two}"
        );
        assert_eq!(rss_sum_kib(&[]), 0);
        assert_eq!(rss_sum_kib(&[pid, u32::MAX]), 0);
        assert!(cpu_sum(&[pid, pid]) >= cpu_sum(&[pid]));
        assert_eq!(cpu_sum(&[u32::MAX]), 0.0);
    }
}
