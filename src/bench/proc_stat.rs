//! Benchmark, measuring: a process's CPU time (user + system, every thread)
//! from `/proc/<pid>/stat`, and its resident memory from `/proc/<pid>/status`.

use std::io;
use std::time::Duration;

/// CPU time the process has used so far.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its ')'.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| io::Error::other("bad stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
    let ticks = |index: usize| -> io::Result<u64> {
        fields.get(index).and_then(|field| field.parse().ok()).ok_or_else(|| io::Error::other("bad stat field"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks_per_second()))
}

/// Resident memory in bytes (`VmRSS`).
pub fn resident_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).ok_or_else(|| io::Error::other("no VmRSS"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| io::Error::other("bad VmRSS"))?;
    Ok(kib * 1024)
}

/// The machine's load average over the last minute.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf with a valid name has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu_and_memory() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(cpu_time(pid).unwrap() > Duration::ZERO);
        assert!(resident_bytes(pid).unwrap() > 0);
    }
}
