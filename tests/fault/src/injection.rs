//! Fault injection from the harness: a demo app fault spec posted to the app, the harness
//! faults (kill, packet loss, I/O stress) and their removal, and the noisy neighbour. Each call
//! returns the timeline events it caused.

use std::time::Duration;

use crate::fault::{FaultKind, FaultSpec};
use crate::http;
use crate::net;
use crate::report::{Event, EventKind};
use crate::sys::unix_now;
use crate::task::{self, APP_PORT, TaskHandle};

fn event(slot: u32, kind: EventKind, detail: impl Into<String>) -> Event {
    Event { t: unix_now(), slot, kind, detail: detail.into() }
}

/// Posts a fault spec to the app of each slot.
pub async fn post_spec(slots: &[u32], line: &str, kind: EventKind) -> Vec<Event> {
    let client = http::client(0);
    let mut events = Vec::new();
    for &slot in slots {
        let url = format!("http://{}:{APP_PORT}/admin/fault", net::slot_address(slot));
        let result = http::call(&client, "POST", &url, line, Duration::from_secs(2)).await;
        let detail = match result {
            Ok(answer) if answer.status == 200 => line.to_owned(),
            Ok(answer) => format!("{line}: status {}", answer.status),
            Err(e) => format!("{line}: {e}"),
        };
        events.push(event(slot, kind, detail));
    }
    events
}

/// What a harness fault started: its events, and the processes to end later.
#[derive(Debug, Default)]
pub struct Applied {
    pub events: Vec<Event>,
    pub pids: Vec<u32>,
}

/// Applies a harness fault (kill, packet loss, I/O stress) to each target task;
/// `room` bounds how long a started stressor may run, seconds.
pub async fn apply_harness(spec: &FaultSpec, targets: &[(u32, Option<&TaskHandle>)], room: f64) -> Applied {
    let line = spec.to_string();
    let mut applied = Applied::default();
    for &(slot, handle) in targets {
        // Logged with the moment before the action: a killed app's exit is logged within
        // milliseconds, and must not come before its cause.
        let at = unix_now();
        let detail = match spec.kind {
            FaultKind::Kill | FaultKind::KillSidecar => {
                let action = if spec.kind == FaultKind::Kill { "kill" } else { "kill-sidecar" };
                let url = format!("http://{}:{}/vgf/{action}", net::slot_address(slot), task::TMDS_PORT);
                match http::call(&http::client(0), "POST", &url, "", Duration::from_secs(2)).await {
                    Ok(answer) => format!("{line}: {}", String::from_utf8_lossy(&answer.body).trim()),
                    Err(e) => format!("{line}: {e}"),
                }
            }
            FaultKind::PacketLoss => {
                let rules = packet_loss_rules(spec.get("percent", 10.0));
                match crate::sys::run_with_input(
                    "ip",
                    &["netns", "exec", &net::slot_netns(slot), "nft", "-f", "-"],
                    &rules,
                ) {
                    Ok(()) => line.clone(),
                    Err(e) => format!("{line}: {e}"),
                }
            }
            FaultKind::IoStress => {
                let Some(handle) = handle else { continue };
                match task::spawn_in_app_cgroups(handle, spec.get("workers", 2.0) as u32, room) {
                    Ok(pid) => {
                        applied.pids.push(pid);
                        format!("{line}: stress-ng pid {pid}")
                    }
                    Err(e) => format!("{line}: {e}"),
                }
            }
            _ => continue,
        };
        applied.events.push(Event { t: at, slot, kind: EventKind::FaultInjected, detail });
    }
    applied
}

/// The nftables table that drops `percent` % of the packets arriving on `eth1` for the app port.
pub fn packet_loss_rules(percent: f64) -> String {
    let percent = percent.clamp(0.0, 100.0).round() as u32;
    format!(
        "table inet vgf_loss {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
         iifname \"eth1\" tcp dport {APP_PORT} numgen random mod 100 < {percent} counter drop\n  }}\n}}\n"
    )
}

/// Ends a harness fault early (its `for_s` ran out): removes the packet loss of each slot, or
/// stops the stressors in `pids`.
pub fn clear_harness(spec: &FaultSpec, slots: &[u32], pids: &mut Vec<u32>) -> Vec<Event> {
    let mut events = Vec::new();
    match spec.kind {
        FaultKind::PacketLoss => {
            for &slot in slots {
                let _ = crate::sys::run(
                    "ip",
                    &["netns", "exec", &net::slot_netns(slot), "nft", "delete", "table", "inet", "vgf_loss"],
                );
                events.push(event(slot, EventKind::FaultCleared, "packet loss removed"));
            }
        }
        FaultKind::IoStress => {
            for pid in std::mem::take(pids) {
                crate::sys::stop_child(pid, Duration::from_secs(2));
            }
            events.push(event(0, EventKind::FaultCleared, "io stress stopped"));
        }
        _ => {}
    }
    events
}

/// Starts the noisy neighbour: `vigil-fault burn` outside every task. Returns its PID (0 when
/// it could not start) and the event.
pub fn start_noise(plan: &crate::scenario::Noise) -> Option<(u32, Event)> {
    let harness = std::env::current_exe().ok()?;
    let child = std::process::Command::new(harness)
        .args(["burn", &plan.threads.to_string(), &format!("{}", plan.for_s.ceil() as u64 + 1)])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(child) => {
            let pid = child.id();
            crate::sys::register_pid(pid);
            // Reaped by the stop; the handle itself is not needed.
            std::mem::forget(child);
            let detail = format!("noise: {} busy threads, pid {pid}", plan.threads);
            Some((pid, event(0, EventKind::FaultInjected, detail)))
        }
        Err(e) => Some((0, event(0, EventKind::FaultInjected, format!("noise failed: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_loss_drops_a_share_of_the_app_port_on_eth1_only() {
        let rules = packet_loss_rules(20.0);
        assert!(rules.starts_with("table inet vgf_loss {\n  chain input {\n"), "{rules}");
        assert!(
            rules.contains("    iifname \"eth1\" tcp dport 8080 numgen random mod 100 < 20 counter drop\n")
        );
        assert!(packet_loss_rules(250.0).contains("< 100 counter"));
    }
}
