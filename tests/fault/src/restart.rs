//! The task init's decisions after a container exits, without I/O: the ECS restart policy (a
//! container is restarted only if it ran at least the attempt period, after the restart
//! delay), what an exit of the essential or of a non-essential container does to the task, the
//! exit status as a shell shows it, and OOM detection from the task's kill counter.

use std::time::Duration;

/// A container's restart policy, as the task definition sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    pub enabled: bool,
    /// A container that exits sooner than this after its start is not restarted, seconds.
    pub attempt_period_s: f64,
    /// The pause before a restart.
    pub delay: Duration,
}

/// The containers of an emulated task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The essential container, with the restart policy.
    App,
    /// Not essential: the task goes on without it; restarted if its own policy is enabled.
    Sidecar,
}

/// What the init does after a container exited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Start the container again after `delay`.
    Restart { delay: Duration },
    /// The task stops: the essential container is gone for good.
    StopTask,
    /// The task keeps running without this container.
    Continue,
}

/// Decides after `role` exited, having run `ran_s` seconds since its last start.
pub fn after_exit(role: Role, policy: &RestartPolicy, ran_s: f64) -> Next {
    match role {
        Role::Sidecar if policy.enabled && ran_s >= policy.attempt_period_s => {
            Next::Restart { delay: policy.delay }
        }
        Role::Sidecar => Next::Continue,
        Role::App if policy.enabled && ran_s >= policy.attempt_period_s => {
            Next::Restart { delay: policy.delay }
        }
        Role::App => Next::StopTask,
    }
}

/// The exit status as a shell shows it: the exit code, or 128 + the signal that killed it.
pub fn shell_code(code: Option<i32>, signal: Option<i32>) -> i32 {
    code.unwrap_or_else(|| 128 + signal.unwrap_or(0))
}

/// Whether an exit was an OOM kill: SIGKILL (137) while the task's OOM kill counter rose from
/// `kills_before` (at the previous such exit) to `kills_now`.
pub fn oom_killed(code: Option<i32>, kills_before: u64, kills_now: u64) -> bool {
    code == Some(137) && kills_now > kills_before
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RestartPolicy =
        RestartPolicy { enabled: true, attempt_period_s: 10.0, delay: Duration::from_millis(1000) };
    const RESTART: Next = Next::Restart { delay: Duration::from_millis(1000) };

    #[test]
    fn the_restart_policy_restarts_only_after_the_attempt_period() {
        let off = RestartPolicy { enabled: false, ..POLICY };
        let rows = [
            // (role, policy, ran seconds, what follows)
            (Role::App, POLICY, 15.0, RESTART),
            (Role::App, POLICY, 10.0, RESTART),
            (Role::App, POLICY, 9.99, Next::StopTask),
            (Role::App, POLICY, 0.0, Next::StopTask),
            (Role::App, off, 600.0, Next::StopTask),
            (Role::Sidecar, POLICY, 15.0, RESTART),
            (Role::Sidecar, POLICY, 9.0, Next::Continue),
            (Role::Sidecar, off, 600.0, Next::Continue),
            (
                Role::App,
                RestartPolicy { delay: Duration::ZERO, ..POLICY },
                11.0,
                Next::Restart { delay: Duration::ZERO },
            ),
        ];
        for (role, policy, ran, expected) in rows {
            assert_eq!(after_exit(role, &policy, ran), expected, "{role:?} {policy:?} ran {ran} s");
        }
    }

    #[test]
    fn exit_codes_read_as_a_shell_shows_them() {
        let rows = [
            (Some(0), None, 0),
            (Some(3), None, 3),
            (None, Some(9), 137),
            (None, Some(6), 134),
            (None, None, 128),
        ];
        for (code, signal, expected) in rows {
            assert_eq!(shell_code(code, signal), expected, "code {code:?} signal {signal:?}");
        }
    }

    #[test]
    fn an_oom_kill_is_a_sigkill_with_a_rising_kill_counter() {
        let rows = [
            (Some(137), 0, 1, true),
            (Some(137), 1, 1, false),
            (Some(137), 2, 1, false),
            (Some(134), 0, 1, false),
            (Some(0), 0, 5, false),
            (None, 0, 1, false),
        ];
        for (code, before, now, expected) in rows {
            assert_eq!(oom_killed(code, before, now), expected, "code {code:?} kills {before} → {now}");
        }
    }
}
