//! The suite's network: a harness namespace with a bridge (HAProxy, the load client, Prometheus
//! and the harness itself live there) and one namespace per task joined to the bridge by a veth
//! whose task end is called `eth1`, as on Fargate.
//!
//! Safety by construction: nothing is added to the namespace the harness was started in, and no
//! namespace of the suite has a default route or a link to a physical interface, so test
//! traffic cannot leave the machine. The harness namespace also blackholes the whole range, so a
//! vanished connected route cannot send traffic anywhere.

use crate::sys::{self, SysError};

/// The harness namespace.
pub const HARNESS_NS: &str = "vgf-h";
/// The bridge inside it.
pub const BRIDGE: &str = "vgf-br";
/// The bridge's address, the tasks' gateway.
pub const GATEWAY: &str = "10.200.0.1";
/// The range every address of the suite is taken from.
pub const RANGE: &str = "10.200.0.0/16";
/// Task slots per arm: slot `n` has address `10.200.0.(10 + n)`.
pub const MAX_SLOTS: u32 = 32;

/// A task slot's address.
pub fn slot_address(slot: u32) -> String {
    format!("10.200.0.{}", 10 + slot)
}

/// A task slot's namespace name.
pub fn slot_netns(slot: u32) -> String {
    format!("{}t{slot}", sys::PREFIX)
}

fn ip(args: &[&str]) -> Result<(), SysError> {
    sys::run("ip", args).map(|_| ())
}

/// Creates the harness namespace, its loopback, the bridge and the blackhole route.
pub fn create_harness() -> Result<(), SysError> {
    ip(&["netns", "add", HARNESS_NS])?;
    sys::register_netns(HARNESS_NS);
    let n = HARNESS_NS;
    ip(&["-n", n, "link", "set", "lo", "up"])?;
    ip(&["-n", n, "link", "add", BRIDGE, "type", "bridge"])?;
    ip(&["-n", n, "addr", "add", &format!("{GATEWAY}/24"), "dev", BRIDGE])?;
    ip(&["-n", n, "link", "set", BRIDGE, "up"])?;
    ip(&["-n", n, "route", "add", "blackhole", RANGE])?;
    Ok(())
}

/// Creates a task's namespace, its `eth1` on the bridge, and its loopback.
pub fn create_task(slot: u32) -> Result<String, SysError> {
    let name = slot_netns(slot);
    let veth = format!("{}v{slot}", sys::PREFIX);
    ip(&["netns", "add", &name])?;
    sys::register_netns(&name);
    ip(&["-n", &name, "link", "set", "lo", "up"])?;
    ip(&["-n", HARNESS_NS, "link", "add", &veth, "type", "veth", "peer", "name", "eth1", "netns", &name])?;
    ip(&["-n", HARNESS_NS, "link", "set", &veth, "master", BRIDGE, "up"])?;
    let address = format!("{}/24", slot_address(slot));
    ip(&["-n", &name, "addr", "add", &address, "dev", "eth1"])?;
    ip(&["-n", &name, "link", "set", "eth1", "up"])?;
    // An earlier arm's task in this slot had another MAC: forget it, or the harness keeps
    // sending to the old one until the neighbour entry times out.
    let _ = ip(&["-n", HARNESS_NS, "neigh", "flush", "to", &slot_address(slot)]);
    Ok(name)
}

/// Deletes a task's namespace (its veth goes with it) after killing what is left inside.
pub fn delete_task(slot: u32) {
    let name = slot_netns(slot);
    sys::remove_netns(&name);
    sys::forget_netns(&name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_addresses_inside_the_range() {
        assert_eq!(slot_address(1), "10.200.0.11");
        assert_eq!(slot_address(MAX_SLOTS), "10.200.0.42");
        assert_eq!(slot_netns(3), "vgf-t3");
    }
}
