//! Is it just this task? The local verdict weighed against the service's other tasks, as the
//! service's Prometheus last scraped them. Pure: the view and the time come in as arguments.
//!
//! On ECS a 503 means "replace this task". A replacement helps only with trouble that lives in
//! the task; trouble the whole service shares (a slow dependency behind `/health`, a cache that
//! fills on every task, a bad build) comes back with every replacement. So, when a fresh view of
//! the peers is at hand:
//!
//! 1. **Shared evidence is not local.** A draining reason that also shows on at least
//!    `share` of the live peers (default half) is *fleet-wide*; one that shows on that share of
//!    this task's own zone but not of the service is *zone-wide* (a zonal dependency: ECS places
//!    the replacement in the same zone). Either way the task stays `degraded` and serves.
//!    A resource forecast on a bad build is shared too, but a replacement does buy time (it
//!    starts empty): once the resource is [imminent](FleetConfig::imminent_seconds) (to run out
//!    within half a minute while growing at a steady pace, as a leak does and a cache nearing
//!    its size does not, or 95 % used) it is released to the budget below, so the service
//!    rotates one task at a time.
//! 2. **The fleet must have seen it.** A draining reason drains only once the view shows this
//!    task's own evidence for it, so the peers' readings are at least as new as its onset. Until
//!    then it waits a query or two in `degraded`.
//! 3. **A drain budget.** At most [`FleetConfig::budget`] tasks drain at once. Tasks that
//!    qualify queue: those already draining first, then the most urgent (nearest predicted
//!    failure), then by task id, so every vigil computes the same order from the same view.
//! 4. **Exempt:** `stopping` and `processes_gone` are failing now, and their 503 takes nothing
//!    away that still serves: they pass every rule here.
//!
//! Without a view (no `VIGIL_FLEET_URL`, Prometheus down or slow, the view older than
//! `stale_ms`, this task missing from it), or with no peers, the local verdict stands
//! unchanged: vigil fails open to its local rules.
//!
//! [`outlier`] is the other direction: a task far outside its calm peers has local evidence
//! even where no rule fires.

use std::cmp::Ordering;

use crate::judge::evidence::{Fact, Measure, Reason, StandOut};
use crate::judge::forecast::Course;
use crate::judge::sample::{Millis, ProbeReading};
use crate::judge::verdict::{Finding, Hold, Phase, State, Verdict};

/// A set of reasons, one bit per [`Reason::ALL`] position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons(u32);

impl Reasons {
    pub fn insert(&mut self, reason: Reason) {
        self.0 |= 1 << reason.index();
    }

    pub fn contains(self, reason: Reason) -> bool {
        self.0 & (1 << reason.index()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |reason| self.contains(*reason))
    }
}

impl FromIterator<Reason> for Reasons {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> Reasons {
        let mut set = Reasons::default();
        for reason in iter {
            set.insert(reason);
        }
        set
    }
}

/// One task of the service as its vigil last reported itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peer {
    /// The task id (the last part of its ARN).
    pub task: String,
    pub zone: String,
    pub revision: String,
    /// Its `/health` answers 503.
    pub draining: bool,
    /// The draining reasons its own rules show, in force or confirming, before the fleet's say.
    pub evidence: Reasons,
    /// Its claim on the drain budget: seconds to its predicted failure (0: failing now), present
    /// while it qualifies for a drain.
    pub candidate_seconds: Option<f64>,
    pub probe_latency_seconds: Option<f64>,
    /// When the probe its app last answered was sent, wall clock ms; `None` while the app does
    /// not answer.
    pub answered_probe_sent_ms: Option<i64>,
    /// Its anomaly score over its calibrated threshold.
    pub anomaly_ratio: Option<f64>,
}

/// The service as one query to Prometheus saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetView {
    /// When the answer arrived, on the tick clock.
    pub at: Millis,
    /// This task as Prometheus last scraped it; `None` when it is not in the answer.
    pub own: Option<Peer>,
    /// The other tasks of the service.
    pub peers: Vec<Peer>,
}

/// How the fleet is weighed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetConfig {
    /// The share of live peers (or of the zone's peers) on which a reason is shared.
    pub share: f64,
    /// At most this many tasks draining at once; `None`: one task or 10 %, whichever is larger.
    pub max_draining: Option<usize>,
    /// A view older than this is no view.
    pub stale_ms: Millis,
    /// A shared resource forecast is released to the budget when the resource runs out within
    /// this many seconds and is at least [`IMMINENT_USAGE`] used or grows at a
    /// [steady](Course::Steady) pace.
    pub imminent_seconds: f64,
    /// Peers that must report a measure before a task may stand out on it.
    pub outlier_min_peers: usize,
    /// How long views must have shown this task's evidence before it may drain, so the peers'
    /// scrapes, which are not in step with this task's, have caught up with theirs.
    pub seen_ms: Millis,
    /// A peer whose app answered within this many seconds answered normally (half the probe
    /// timeout).
    pub answered_latency_seconds: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            share: 0.5,
            max_draining: None,
            stale_ms: 30_000,
            imminent_seconds: 30.0,
            outlier_min_peers: 4,
            seen_ms: 1_000,
            answered_latency_seconds: 0.5,
        }
    }
}

impl FleetConfig {
    /// The drain budget of a service of `tasks` tasks.
    pub fn budget(&self, tasks: usize) -> usize {
        self.max_draining.unwrap_or_else(|| (tasks / 10).max(1))
    }
}

/// A shared forecast whose growth is not [steady](Course::Steady) is imminent only this close to
/// the limit: a cache that fills fast and holds below 95 % never is, a leak always gets there.
pub const IMMINENT_USAGE: f64 = 0.95;

/// A resource forecast this close to its limit and to running out ([`URGENT_SECONDS`]) drains
/// without waiting for the view to show it: the wait (a scrape and a query, at least a second)
/// would outlast the task. Sharing and the budget still apply, read from the last view.
pub const URGENT_USAGE: f64 = 0.85;

/// See [`URGENT_USAGE`].
pub const URGENT_SECONDS: f64 = 5.0;

/// Buckets of this many seconds of urgency count as equally urgent, so views a scrape apart
/// order tasks alike.
const URGENCY_BUCKET_SECONDS: f64 = 15.0;

/// What the fleet made of this tick, for `/status` and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetOutcome {
    /// A fresh view that includes this task was used.
    pub used: bool,
    /// Why not, when not.
    pub unused: Option<&'static str>,
    /// The view's age in ms on this tick.
    pub age_ms: Option<Millis>,
    pub peers: usize,
    pub peers_draining: usize,
    pub budget: usize,
    /// This task's claim on the budget (what it publishes as `vigil_drain_candidate_seconds`).
    pub candidate_seconds: Option<f64>,
    /// Shared forecasts released to the budget that drain on this tick.
    pub released: Reasons,
}

/// This task as the arbiter needs it.
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    pub task: &'a str,
    pub zone: &'a str,
    /// The verdict this task served on the previous tick was `draining`.
    pub was_draining: bool,
    /// The shared forecasts the previous tick released and served `draining` on
    /// ([`FleetOutcome::released`]).
    pub was_released: Reasons,
    /// The reasons the views have shown as this task's for at least `seen_ms` ([`Sightings`]).
    pub seen: Reasons,
    /// Whether the views have shown this task's claim on the budget for at least `seen_ms`.
    pub claim_seen: bool,
    /// Since when this task's app has not answered ([`Silence`]).
    pub unanswered_since_ms: Option<i64>,
}

/// Since when this task's app has not answered, as a wall-clock time the peers' answers can be
/// compared with: the send time of the first unanswered probe, plus twice the app's last answer
/// latency (at least 10 ms). The app was already failing then, so a peer's probe sent after it
/// met the same dependencies: if it was answered quickly, they are fine.
#[derive(Debug, Clone, Default)]
pub struct Silence {
    since_ms: Option<i64>,
    last_latency_ms: u64,
}

impl Silence {
    pub fn observe(&mut self, probe: Option<ProbeReading>, sent_ms: i64) -> Option<i64> {
        match probe {
            Some(ProbeReading::Answered { latency_ms, .. }) => {
                self.last_latency_ms = latency_ms;
                self.since_ms = None;
            }
            Some(ProbeReading::TimedOut | ProbeReading::Refused) => {
                let margin = (2 * self.last_latency_ms).max(10) as i64;
                self.since_ms = self.since_ms.or(Some(sent_ms + margin));
            }
            None => self.since_ms = None,
        }
        self.since_ms
    }
}

/// Since when the fleet views have shown each of this task's reasons.
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    since: [Option<Millis>; Reason::ALL.len()],
    claim_since: Option<Millis>,
    last_view: Option<Millis>,
}

impl Sightings {
    /// Whether the views have shown this task's claim on the budget for long enough.
    pub fn claim_seen(&self, config: &FleetConfig) -> bool {
        let now = self.last_view.unwrap_or(0);
        self.claim_since.is_some_and(|since| now.saturating_sub(since) >= config.seen_ms)
    }

    /// Takes in the view of this tick (if it is new) and gives the reasons seen for long enough.
    pub fn observe(&mut self, view: Option<&FleetView>, config: &FleetConfig) -> Reasons {
        if let Some(view) = view
            && self.last_view != Some(view.at)
        {
            self.last_view = Some(view.at);
            let shown = view.own.as_ref().map_or(Reasons::default(), |own| own.evidence);
            let claimed = view.own.as_ref().is_some_and(|own| own.candidate_seconds.is_some());
            self.claim_since = match (claimed, self.claim_since) {
                (true, None) => Some(view.at),
                (true, kept) => kept,
                (false, _) => None,
            };
            for reason in Reason::ALL {
                let since = &mut self.since[reason.index()];
                *since = match (shown.contains(reason), *since) {
                    (true, None) => Some(view.at),
                    (true, kept) => kept,
                    (false, _) => None,
                };
            }
        }
        let now = self.last_view.unwrap_or(0);
        Reason::ALL
            .into_iter()
            .filter(|r| {
                self.since[r.index()].is_some_and(|since| now.saturating_sub(since) >= config.seen_ms)
            })
            .collect()
    }
}

/// Whether `view` may be used at `now`, and why not.
pub fn usable<'v>(
    view: Option<&'v FleetView>,
    now: Millis,
    config: &FleetConfig,
) -> Result<&'v FleetView, &'static str> {
    let view = view.ok_or("no fleet view")?;
    if now.saturating_sub(view.at) > config.stale_ms {
        return Err("fleet view is stale");
    }
    if view.own.is_none() {
        return Err("this task is not in the fleet view");
    }
    if view.peers.is_empty() {
        return Err("no peers");
    }
    Ok(view)
}

/// The served verdict: `local` weighed against `view`. `local` is the judge's verdict of this
/// tick; the returned verdict's `since` is left to the caller.
pub fn arbitrate(
    local: &Verdict,
    own: Own<'_>,
    view: Option<&FleetView>,
    now: Millis,
    config: &FleetConfig,
) -> (Vec<Finding>, FleetOutcome) {
    let mut findings = local.findings.clone();
    let view = match usable(view, now, config) {
        Ok(view) => view,
        Err(why) => {
            let outcome = FleetOutcome {
                unused: Some(why),
                age_ms: view.map(|v| now.saturating_sub(v.at)),
                peers: view.map_or(0, |v| v.peers.len()),
                candidate_seconds: candidate(&findings),
                ..FleetOutcome::default()
            };
            return (findings, outcome);
        }
    };
    let in_force = |f: &Finding| f.state == State::Draining && !exempt(f.reason);
    let mut released_shared = Reasons::default();
    let mut confirming_shared = Reasons::default();
    for finding in findings.iter_mut().filter(|f| in_force(f) || confirming(f)) {
        let shared = shared(finding.reason, own.zone, view, config);
        // Released stays released while the task drains on it: a forecast whose course wavers
        // must not hand its slot back and forth.
        let released = finding.reason.forecast()
            && (own.was_released.contains(finding.reason) || imminent(finding, config));
        match shared {
            Some(_) if released => released_shared.insert(finding.reason),
            Some(_) if confirming(finding) => confirming_shared.insert(finding.reason),
            Some(hold) => hold_back(finding, hold),
            None => {}
        }
    }
    // The claim is published while the reason is still confirming and before the view has seen
    // the evidence, so that both have reached the peers by the time it is confirmed.
    let claim = candidate(findings.iter().filter(|f| !confirming_shared.contains(f.reason)));
    let alone = answered_since(own.unanswered_since_ms, view, config);
    // Need not wait: a refused probe, a silence the peers have answered since, a resource
    // about to run out.
    let exempt_from_wait = |f: &Finding| refused(f) || urgent(f) || (alone && unanswered(f));
    let waits = |f: &Finding| !exempt_from_wait(f);
    for finding in findings.iter_mut().filter(|f| in_force(f) && waits(f)) {
        // Claims made on the same tick by several tasks are all in the view only once this
        // task's own has been there a while: until then nobody may take a slot on it, or every
        // one of them would think itself first.
        let claim_waits = !own.claim_seen && !own.was_draining;
        if !own.seen.contains(finding.reason) || claim_waits {
            hold_back(finding, Hold::Unseen);
        }
    }
    let budget = config.budget(view.peers.len() + 1);
    let peers_draining = view.peers.iter().filter(|p| p.draining).count();
    if let Some(urgency) = claim {
        let place = place_in_queue(own, urgency, &view.peers);
        if place >= budget {
            let hold = Hold::Budget { draining: peers_draining, budget, place };
            for finding in findings.iter_mut().filter(|f| in_force(f)) {
                hold_back(finding, hold.clone());
            }
        }
    }
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.state));
    let released = findings
        .iter()
        .filter(|f| f.state == State::Draining && released_shared.contains(f.reason))
        .map(|f| f.reason)
        .collect();
    let outcome = FleetOutcome {
        used: true,
        unused: None,
        released,
        age_ms: Some(now.saturating_sub(view.at)),
        peers: view.peers.len(),
        peers_draining,
        budget,
        candidate_seconds: claim,
    };
    (findings, outcome)
}

/// A resource about to run out: see [`URGENT_USAGE`].
fn urgent(finding: &Finding) -> bool {
    finding.reason.forecast()
        && finding.eta_seconds.is_some_and(|eta| eta <= URGENT_SECONDS)
        && finding.fact.usage().is_some_and(|usage| usage >= URGENT_USAGE)
}

/// A refused connection is this task's own: nothing listens on its port. A shared slowdown
/// times probes out, it does not close ports, so it need not wait for the view.
fn refused(finding: &Finding) -> bool {
    matches!(finding.fact, Fact::ProbeUnanswered { refused: true, .. })
}

/// A probe that timed out.
fn unanswered(finding: &Finding) -> bool {
    matches!(finding.fact, Fact::ProbeUnanswered { refused: false, .. })
}

/// Whether every peer's app answered, quickly, a probe sent after this task's app fell silent,
/// and no peer shows `app_unresponsive`: then the silence is this task's alone, and the view
/// that says so is already newer than it, so a timed-out probe need not wait for the view to
/// show its own evidence. A peer that was not scraped since, or whose app is slow or silent
/// too, leaves the question to the view (rule 2).
fn answered_since(since: Option<i64>, view: &FleetView, config: &FleetConfig) -> bool {
    let Some(since) = since else { return false };
    !view.peers.is_empty()
        && view.peers.iter().all(|peer| {
            peer.answered_probe_sent_ms.is_some_and(|sent| sent >= since)
                && peer.probe_latency_seconds.is_some_and(|l| l <= config.answered_latency_seconds)
                && !peer.evidence.contains(Reason::AppUnresponsive)
        })
}

/// Reasons that pass the fleet: the task is failing or stopping now.
pub fn exempt(reason: Reason) -> bool {
    matches!(reason, Reason::Stopping | Reason::ProcessesGone)
}

fn hold_back(finding: &mut Finding, hold: Hold) {
    finding.state = State::Degraded;
    finding.held = Some(hold);
}

/// Whether a draining forecast is about to run out: within the imminent time, and either nearly
/// full or growing at a pace that does not slow down (a leak, not a fill nearing its ceiling).
fn imminent(finding: &Finding, config: &FleetConfig) -> bool {
    let eta = finding.eta_seconds.unwrap_or(f64::INFINITY);
    let usage = finding.fact.usage().unwrap_or(0.0);
    let steady = matches!(&finding.fact, Fact::Forecast(f) if f.forecast.course == Course::Steady);
    eta <= config.imminent_seconds && (usage >= IMMINENT_USAGE || steady)
}

/// A draining reason still being confirmed.
fn confirming(finding: &Finding) -> bool {
    matches!(finding.phase, Phase::Confirming { .. }) && finding.reason.drains() && !exempt(finding.reason)
}

/// This task's claim on the budget: the nearest failure of a draining reason in force after the
/// holds or being confirmed, 0 for reasons that are failing now. A claim made while confirming
/// has been in the peers' views for a while when the reason drains, so the drain need not wait
/// for it to be seen (three scrapes late at one-second checks: a fast leak crashed first).
fn candidate<'f>(findings: impl IntoIterator<Item = &'f Finding>) -> Option<f64> {
    findings
        .into_iter()
        .filter(|f| (f.state == State::Draining && !exempt(f.reason)) || confirming(f))
        .map(|f| f.eta_seconds.unwrap_or(0.0).max(0.0))
        .min_by(f64::total_cmp)
}

/// Whether `reason` is shared by the fleet or by this task's zone.
fn shared(reason: Reason, zone: &str, view: &FleetView, config: &FleetConfig) -> Option<Hold> {
    let many = |with: usize, of: usize| of > 0 && with > 0 && with as f64 >= config.share * of as f64;
    let of = view.peers.len();
    let with = view.peers.iter().filter(|p| p.evidence.contains(reason)).count();
    if many(with, of) {
        return Some(Hold::FleetWide { with, of });
    }
    let zone_peers = || view.peers.iter().filter(|p| !zone.is_empty() && p.zone == zone);
    let (zone_with, zone_of) =
        (zone_peers().filter(|p| p.evidence.contains(reason)).count(), zone_peers().count());
    many(zone_with, zone_of).then(|| Hold::ZoneWide { zone: zone.to_string(), with: zone_with, of: zone_of })
}

/// This task's place in the drain queue of the service (0 first). Every vigil sorts the same
/// view the same way: draining tasks first, then by urgency bucket, then by task id.
fn place_in_queue(own: Own<'_>, urgency: f64, peers: &[Peer]) -> usize {
    let key = |draining: bool, seconds: f64, task: &str| {
        (!draining, (seconds / URGENCY_BUCKET_SECONDS).floor() as i64, task.to_string())
    };
    let mine = key(own.was_draining, urgency, own.task);
    peers
        .iter()
        .filter(|p| p.draining || p.candidate_seconds.is_some())
        .map(|p| key(p.draining, p.candidate_seconds.unwrap_or(0.0), &p.task))
        .filter(|theirs| theirs.cmp(&mine) == Ordering::Less)
        .count()
}

/// Whether this task stands far outside its calm peers, on the first measure it does.
///
/// "Far" is robust and relative: with `m` the peers' median and `s` their median absolute
/// deviation scaled to a standard deviation (×1.4826), the bar is the largest of `3 m`,
/// `m + 5 s` and `m +` the measure's floor. It needs [`FleetConfig::outlier_min_peers`] peers
/// reporting the measure, and the peers calm: fewer than `share` of them with any draining
/// evidence. When every task moves together the median moves with them, so no task is far from
/// it; and a fleet in trouble is not calm.
pub fn outlier(own: &Peer, view: &FleetView, config: &FleetConfig) -> Option<StandOut> {
    let troubled = view.peers.iter().filter(|p| !p.evidence.is_empty()).count();
    if troubled as f64 >= config.share * view.peers.len() as f64 {
        return None;
    }
    [Measure::ProbeLatency, Measure::AnomalyRatio].into_iter().find_map(|measure| {
        let value = measured(measure, own)?;
        let mut values: Vec<f64> =
            view.peers.iter().filter_map(|p| measured(measure, p)).filter(|v| v.is_finite()).collect();
        if values.len() < config.outlier_min_peers.max(1) {
            return None;
        }
        let median = median(&mut values);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let spread = 1.4826 * self::median(&mut deviations);
        let bar = (3.0 * median).max(median + 5.0 * spread).max(median + measure.floor());
        (value > bar).then_some(StandOut { measure, value, median, bar, peers: values.len() })
    })
}

fn measured(measure: Measure, peer: &Peer) -> Option<f64> {
    match measure {
        Measure::ProbeLatency => peer.probe_latency_seconds,
        Measure::AnomalyRatio => peer.anomaly_ratio,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// What the fleet looks like, by task definition revision, for the metrics an alarm rolls a
/// deployment back on: tasks, tasks draining, and tasks showing each draining reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RevisionCount {
    pub revision: String,
    pub tasks: usize,
    pub draining: usize,
    /// Tasks showing each reason, in the order of [`Reason::ALL`].
    pub reasons: [usize; Reason::ALL.len()],
}

/// The view, this task included, counted by revision (sorted by revision).
pub fn by_revision(view: &FleetView) -> Vec<RevisionCount> {
    let mut counts: Vec<RevisionCount> = Vec::new();
    for peer in view.own.iter().chain(&view.peers) {
        let index = match counts.iter().position(|c| c.revision == peer.revision) {
            Some(index) => index,
            None => {
                counts.push(RevisionCount { revision: peer.revision.clone(), ..RevisionCount::default() });
                counts.len() - 1
            }
        };
        let count = &mut counts[index];
        count.tasks += 1;
        count.draining += usize::from(peer.draining);
        for reason in peer.evidence.iter() {
            count.reasons[reason.index()] += 1;
        }
    }
    counts.sort_by(|a, b| a.revision.cmp(&b.revision));
    counts
}

/// The draining reasons of `verdict` that are in force or confirming: what this task publishes
/// as its evidence for the peers, before the fleet's say.
pub fn evidence_of(verdict: &Verdict) -> Reasons {
    verdict
        .findings
        .iter()
        .filter(|f| f.reason.drains() && !matches!(f.phase, Phase::Clearing { .. }))
        .map(|f| f.reason)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::features::{Resource, ResourceForecast};
    use crate::judge::forecast::{Course, Forecast, Scale};

    fn peer(task: &str, zone: &str, evidence: &[Reason]) -> Peer {
        Peer {
            task: task.into(),
            zone: zone.into(),
            revision: "7".into(),
            evidence: evidence.iter().copied().collect(),
            ..Peer::default()
        }
    }

    fn view(own: &[Reason], peers: Vec<Peer>) -> FleetView {
        FleetView { at: 1_000, own: Some(peer("me", "a", own)), peers }
    }

    fn draining(reason: Reason, fact: Fact, eta_seconds: Option<f64>) -> Finding {
        Finding { reason, state: State::Draining, fact, phase: Phase::Now, eta_seconds, held: None }
    }

    fn unresponsive() -> Finding {
        draining(
            Reason::AppUnresponsive,
            Fact::ProbeUnanswered { ticks: 1, refused: false, cpu_saturated: false },
            None,
        )
    }

    fn memory(level: f64, eta: f64) -> Finding {
        memory_on(level, eta, Course::Unsettled)
    }

    fn memory_on(level: f64, eta: f64, course: Course) -> Finding {
        let forecast = Forecast {
            eta_seconds: eta,
            rate_per_second: 1.0,
            confidence: 0.9,
            level,
            limit: 100.0,
            scale: Scale::Medium,
            course,
        };
        let forecast = ResourceForecast {
            resource: Resource::Memory,
            subject: "cgroup /app".into(),
            forecast,
            warm: true,
        };
        draining(Reason::MemoryExhaustion, Fact::Forecast(forecast), Some(eta))
    }

    fn verdict(findings: Vec<Finding>) -> Verdict {
        Verdict { state: findings.first().map_or(State::Healthy, |f| f.state), findings, since: 0 }
    }

    /// This task, with whatever the view shows of it seen for long enough.
    fn own(view: &FleetView) -> Own<'static> {
        let seen = view.own.as_ref().map_or(Reasons::default(), |own| own.evidence);
        Own {
            task: "me",
            zone: "a",
            was_draining: false,
            was_released: Reasons::default(),
            seen,
            claim_seen: true,
            unanswered_since_ms: None,
        }
    }

    fn served(local: Vec<Finding>, view: &FleetView) -> (State, Option<String>) {
        let (findings, _) = arbitrate(&verdict(local), own(view), Some(view), 2_000, &FleetConfig::default());
        let state = findings.first().map_or(State::Healthy, |f| f.state);
        (state, findings.first().and_then(|f| f.held.as_ref()).map(|h| h.code().to_string()))
    }

    #[test]
    fn a_reason_on_half_the_peers_is_fleet_wide_and_serves() {
        let shared = view(
            &[Reason::AppUnresponsive],
            vec![peer("b", "b", &[Reason::AppUnresponsive]), peer("c", "c", &[])],
        );
        assert_eq!(served(vec![unresponsive()], &shared), (State::Degraded, Some("fleet_wide".into())));
        let alone = view(&[Reason::AppUnresponsive], vec![peer("b", "b", &[]), peer("c", "c", &[])]);
        assert_eq!(served(vec![unresponsive()], &alone), (State::Draining, None));
    }

    #[test]
    fn a_reason_shared_by_the_zone_only_is_zone_wide() {
        let peers = vec![
            peer("b", "a", &[Reason::AppUnresponsive]),
            peer("c", "b", &[]),
            peer("d", "b", &[]),
            peer("e", "c", &[]),
            peer("f", "c", &[]),
        ];
        let zonal = view(&[Reason::AppUnresponsive], peers);
        assert_eq!(served(vec![unresponsive()], &zonal), (State::Degraded, Some("zone_wide".into())));
    }

    #[test]
    fn evidence_the_view_does_not_show_yet_waits() {
        let fresh = view(&[], vec![peer("b", "b", &[]), peer("c", "c", &[])]);
        assert_eq!(served(vec![unresponsive()], &fresh), (State::Degraded, Some("fleet_unseen".into())));
    }

    #[test]
    fn a_claim_on_the_budget_waits_until_the_view_shows_it() {
        // Three tasks released at once, none of whose claims the view shows yet: none drains.
        let calm = view(&[Reason::FdExhaustion], vec![peer("b", "b", &[]), peer("c", "c", &[])]);
        let fd = draining(Reason::FdExhaustion, Fact::ProcessesExited, Some(10.0));
        let own = Own { claim_seen: false, ..own(&calm) };
        let (findings, outcome) =
            arbitrate(&verdict(vec![fd]), own, Some(&calm), 2_000, &FleetConfig::default());
        assert_eq!((findings[0].state, findings[0].held.clone()), (State::Degraded, Some(Hold::Unseen)));
        assert_eq!(outcome.candidate_seconds, Some(10.0), "the claim is still published");
    }

    #[test]
    fn a_resource_about_to_run_out_need_not_wait_for_the_view() {
        // The view does not show this task's evidence or claim yet.
        let calm = view(&[], vec![peer("b", "b", &[]), peer("c", "c", &[])]);
        let served = |finding: Finding| {
            let own = Own { claim_seen: false, ..own(&calm) };
            let (findings, _) =
                arbitrate(&verdict(vec![finding]), own, Some(&calm), 2_000, &FleetConfig::default());
            (findings[0].state, findings[0].held.as_ref().map(Hold::code))
        };
        assert_eq!(served(memory(90.0, 4.0)), (State::Draining, None));
        // Not close enough to the limit, or not soon enough: it waits.
        assert_eq!(served(memory(80.0, 4.0)), (State::Degraded, Some("fleet_unseen")));
        assert_eq!(served(memory(90.0, 8.0)), (State::Degraded, Some("fleet_unseen")));
        // Shared, it is held as before: urgency skips only the wait.
        let sharing = view(
            &[Reason::MemoryExhaustion],
            vec![peer("b", "b", &[Reason::MemoryExhaustion]), peer("c", "c", &[Reason::MemoryExhaustion])],
        );
        let (findings, _) = arbitrate(
            &verdict(vec![memory(90.0, 4.0)]),
            own(&sharing),
            Some(&sharing),
            2_000,
            &FleetConfig::default(),
        );
        assert_eq!(findings[0].held.as_ref().map(Hold::code), Some("fleet_wide"));
    }

    #[test]
    fn a_reason_still_confirming_already_claims_unless_the_fleet_shares_it() {
        let confirming = |reason| Finding {
            state: State::Degraded,
            phase: Phase::Confirming { ticks: 1, of: 3 },
            ..draining(reason, Fact::ProcessesExited, Some(9.0))
        };
        let claim = |peers: Vec<Peer>| {
            let view = view(&[Reason::FdExhaustion], peers);
            let local = verdict(vec![confirming(Reason::FdExhaustion)]);
            let (findings, outcome) =
                arbitrate(&local, own(&view), Some(&view), 2_000, &FleetConfig::default());
            assert_eq!(findings[0].state, State::Degraded, "confirming stays degraded");
            outcome.candidate_seconds
        };
        assert_eq!(claim(vec![peer("b", "b", &[]), peer("c", "c", &[])]), Some(9.0));
        let sharing = vec![peer("b", "b", &[Reason::FdExhaustion]), peer("c", "c", &[Reason::FdExhaustion])];
        assert_eq!(claim(sharing), None, "a shared reason claims nothing until it is released");
        // A degraded-only reason never claims.
        let calm = view(&[], vec![peer("b", "b", &[]), peer("c", "c", &[])]);
        let degraded = Finding { reason: Reason::Restarted, ..confirming(Reason::Restarted) };
        let (_, outcome) =
            arbitrate(&verdict(vec![degraded]), own(&calm), Some(&calm), 2_000, &FleetConfig::default());
        assert_eq!(outcome.candidate_seconds, None);
    }

    #[test]
    fn a_silent_app_need_not_wait_for_the_view_when_every_peer_has_answered_since() {
        let since = 1_790_000_000_000;
        let answered = |task: &str, sent: i64, latency: f64| Peer {
            answered_probe_sent_ms: Some(sent),
            probe_latency_seconds: Some(latency),
            ..peer(task, task, &[])
        };
        let served = |peers: Vec<Peer>, since: Option<i64>| {
            let view = view(&[], peers);
            let own = Own { unanswered_since_ms: since, ..own(&view) };
            let (findings, _) =
                arbitrate(&verdict(vec![unresponsive()]), own, Some(&view), 2_000, &FleetConfig::default());
            (findings[0].state, findings[0].held.as_ref().map(Hold::code))
        };
        let calm = || vec![answered("b", since + 40, 0.004), answered("c", since + 700, 0.010)];
        assert_eq!(served(calm(), Some(since)), (State::Draining, None));
        // Without a silence to compare with, or with a peer not asked since: the view decides.
        assert_eq!(served(calm(), None), (State::Degraded, Some("fleet_unseen")));
        let asked_before = vec![answered("b", since - 1, 0.004), answered("c", since + 700, 0.010)];
        assert_eq!(served(asked_before, Some(since)), (State::Degraded, Some("fleet_unseen")));
        // A peer that answered slowly, or not at all, may be in the same trouble.
        let slow = vec![answered("b", since + 40, 0.9), answered("c", since + 700, 0.010)];
        assert_eq!(served(slow, Some(since)), (State::Degraded, Some("fleet_unseen")));
        let silent = vec![peer("b", "b", &[]), answered("c", since + 700, 0.010)];
        assert_eq!(served(silent, Some(since)), (State::Degraded, Some("fleet_unseen")));
        // A peer showing the evidence makes it fleet-wide, whatever it answered before.
        let sharing = vec![
            Peer {
                evidence: [Reason::AppUnresponsive].into_iter().collect(),
                ..answered("b", since + 40, 0.004)
            },
            answered("c", since + 700, 0.010),
        ];
        assert_eq!(served(sharing, Some(since)), (State::Degraded, Some("fleet_wide")));
    }

    #[test]
    fn silence_counts_from_the_first_unanswered_probe_with_a_margin() {
        let mut silence = Silence::default();
        let answered = Some(ProbeReading::Answered { status: 200, latency_ms: 30 });
        assert_eq!(silence.observe(answered, 1_000), None);
        assert_eq!(silence.observe(Some(ProbeReading::TimedOut), 2_000), Some(2_060));
        assert_eq!(silence.observe(Some(ProbeReading::TimedOut), 3_000), Some(2_060), "from the first");
        assert_eq!(silence.observe(answered, 4_000), None);
        let quick = Some(ProbeReading::Answered { status: 200, latency_ms: 1 });
        assert_eq!(silence.observe(quick, 5_000), None);
        assert_eq!(silence.observe(Some(ProbeReading::Refused), 6_000), Some(6_010), "at least 10 ms");
        assert_eq!(silence.observe(None, 7_000), None);
    }

    #[test]
    fn a_refused_probe_need_not_wait_for_the_view() {
        let fresh = view(&[], vec![peer("b", "b", &[]), peer("c", "c", &[])]);
        let refused = draining(
            Reason::AppUnresponsive,
            Fact::ProbeUnanswered { ticks: 1, refused: true, cpu_saturated: false },
            None,
        );
        assert_eq!(served(vec![refused], &fresh), (State::Draining, None));
    }

    #[test]
    fn without_a_usable_view_the_local_verdict_stands() {
        let local = verdict(vec![unresponsive()]);
        let config = FleetConfig::default();
        let stale = view(&[], vec![peer("b", "b", &[Reason::AppUnresponsive])]);
        let missing_self = FleetView { own: None, ..stale.clone() };
        let alone = view(&[], Vec::new());
        for (view, why) in [
            (None, "no fleet view"),
            (Some(&stale), "fleet view is stale"),
            (Some(&missing_self), "this task is not in the fleet view"),
            (Some(&alone), "no peers"),
        ] {
            let now = if why == "fleet view is stale" { 1_000 + config.stale_ms + 1 } else { 2_000 };
            let (findings, outcome) = arbitrate(&local, own(&alone), view, now, &config);
            assert_eq!(findings, local.findings, "{why}");
            assert_eq!(outcome.unused, Some(why));
            assert!(!outcome.used);
        }
    }

    #[test]
    fn stopping_and_gone_pass_everything() {
        let everyone = view(
            &[],
            vec![peer("b", "b", &[Reason::ProcessesGone]), Peer { draining: true, ..peer("c", "c", &[]) }],
        );
        let gone = draining(Reason::ProcessesGone, Fact::ProcessesExited, None);
        assert_eq!(served(vec![gone], &everyone), (State::Draining, None));
    }

    #[test]
    fn a_shared_forecast_is_held_until_imminent_then_queues_for_the_budget() {
        let leak = [Reason::MemoryExhaustion];
        let fleet = |me: &str| {
            vec![Peer { candidate_seconds: Some(20.0), ..peer("b", "b", &leak) }, peer("c", "c", &leak)]
                .into_iter()
                .filter(|p| p.task != me)
                .collect::<Vec<_>>()
        };
        // Far from the limit: fleet-wide, like a cache filling on every task.
        assert_eq!(
            served(vec![memory(60.0, 120.0)], &view(&leak, fleet(""))),
            (State::Degraded, Some("fleet_wide".into()))
        );
        // Nearly full but not soon, as a cache holding at 93 %: still fleet-wide.
        assert_eq!(
            served(vec![memory(93.0, 300.0)], &view(&leak, fleet(""))),
            (State::Degraded, Some("fleet_wide".into()))
        );
        // A linear cache fill at 93 %, seconds from the limit before it stops: not yet.
        assert_eq!(
            served(vec![memory(93.0, 4.0)], &view(&leak, fleet(""))),
            (State::Degraded, Some("fleet_wide".into()))
        );
        // Imminent: released, and b (as urgent, an earlier id) is ahead in the queue of one.
        assert_eq!(
            served(vec![memory(96.0, 25.0)], &view(&leak, fleet(""))),
            (State::Degraded, Some("drain_budget".into()))
        );
        // More urgent than b by a bucket: this task is first.
        assert_eq!(served(vec![memory(99.0, 2.0)], &view(&leak, fleet(""))), (State::Draining, None));
    }

    #[test]
    fn a_shared_forecast_growing_at_a_steady_pace_is_released_within_the_imminent_time() {
        let leak = [Reason::MemoryExhaustion];
        let fleet = vec![peer("b", "b", &leak), peer("c", "c", &leak)];
        let at = |level: f64, eta: f64, course: Course| {
            served(vec![memory_on(level, eta, course)], &view(&leak, fleet.clone()))
        };
        // A leak on a bad build, 60 % used, steady, 2 s from the limit: released, and first.
        assert_eq!(at(60.0, 2.0, Course::Steady), (State::Draining, None));
        // Steady but further than the imminent time: held.
        assert_eq!(at(60.0, 45.0, Course::Steady), (State::Degraded, Some("fleet_wide".into())));
        // A fill slowing towards its ceiling, or growth too new to tell: held until 95 %.
        assert_eq!(at(60.0, 2.0, Course::Slowing), (State::Degraded, Some("fleet_wide".into())));
        assert_eq!(at(60.0, 2.0, Course::Unsettled), (State::Degraded, Some("fleet_wide".into())));
        assert_eq!(at(96.0, 2.0, Course::Slowing), (State::Draining, None));

        // Once released and draining, a wavering course keeps the slot; a task that was draining
        // on something else does not release a shared forecast by that.
        let view = view(&leak, fleet.clone());
        let steady = arbitrate(
            &verdict(vec![memory_on(60.0, 10.0, Course::Steady)]),
            own(&view),
            Some(&view),
            2_000,
            &FleetConfig::default(),
        )
        .1;
        assert!(steady.released.contains(Reason::MemoryExhaustion));
        let wavering = verdict(vec![memory_on(60.0, 9.0, Course::Unsettled)]);
        let kept = Own { was_draining: true, was_released: steady.released, ..own(&view) };
        assert_eq!(
            arbitrate(&wavering, kept, Some(&view), 3_000, &FleetConfig::default()).0[0].state,
            State::Draining
        );
        let other = Own { was_draining: true, ..own(&view) };
        assert_eq!(
            arbitrate(&wavering, other, Some(&view), 3_000, &FleetConfig::default()).0[0].state,
            State::Degraded
        );
    }

    #[test]
    fn the_budget_is_one_task_or_ten_percent_and_draining_tasks_keep_their_place() {
        let config = FleetConfig::default();
        assert_eq!([1, 3, 10, 19, 20, 100].map(|n| config.budget(n)), [1, 1, 1, 1, 2, 10]);
        assert_eq!(FleetConfig { max_draining: Some(3), ..config }.budget(5), 3);

        let alone = [Reason::FdExhaustion];
        let b_draining = vec![Peer { draining: true, ..peer("b", "b", &[]) }, peer("c", "c", &[])];
        let fd = || draining(Reason::FdExhaustion, Fact::ProcessesExited, Some(100.0));
        assert_eq!(
            served(vec![fd()], &view(&alone, b_draining.clone())),
            (State::Degraded, Some("drain_budget".into()))
        );
        // This task drained first: it keeps its slot against a peer that started later.
        let (findings, outcome) = arbitrate(
            &verdict(vec![fd()]),
            Own {
                was_draining: true,
                was_released: Reasons::default(),
                task: "z",
                zone: "a",
                seen: alone.iter().copied().collect(),
                claim_seen: true,
                unanswered_since_ms: None,
            },
            Some(&view(
                &alone,
                vec![Peer { candidate_seconds: Some(1.0), ..peer("b", "b", &[]) }, peer("c", "c", &[])],
            )),
            2_000,
            &config,
        );
        assert_eq!(findings[0].state, State::Draining);
        assert_eq!((outcome.budget, outcome.candidate_seconds), (1, Some(100.0)));
    }

    #[test]
    fn every_vigil_orders_the_queue_alike() {
        // Three tasks with the same imminent claim: each computes its own place from the same
        // view; exactly one place is 0.
        let tasks = ["t1", "t2", "t3"];
        let places: Vec<usize> = tasks
            .iter()
            .map(|me| {
                let peers: Vec<Peer> = tasks
                    .iter()
                    .filter(|t| *t != me)
                    .map(|t| Peer { candidate_seconds: Some(12.0), ..peer(t, "a", &[]) })
                    .collect();
                place_in_queue(
                    Own {
                        task: me,
                        zone: "a",
                        was_draining: false,
                        was_released: Reasons::default(),
                        seen: Reasons::default(),
                        claim_seen: true,
                        unanswered_since_ms: None,
                    },
                    11.0,
                    &peers,
                )
            })
            .collect();
        assert_eq!(places, [0, 1, 2]);
    }

    #[test]
    fn a_task_stands_out_only_from_calm_peers_that_report_enough() {
        let config = FleetConfig::default();
        let with_latency = |latencies: &[f64]| FleetView {
            at: 0,
            own: None,
            peers: latencies
                .iter()
                .enumerate()
                .map(|(i, l)| Peer { probe_latency_seconds: Some(*l), ..peer(&format!("p{i}"), "a", &[]) })
                .collect(),
        };
        let me = |latency: f64| Peer { probe_latency_seconds: Some(latency), ..peer("me", "a", &[]) };
        let calm = with_latency(&[0.010, 0.012, 0.011, 0.013]);
        let out = outlier(&me(1.5), &calm, &config).expect("1.5 s against 11 ms stands out");
        assert_eq!((out.measure, out.peers), (Measure::ProbeLatency, 4));
        assert!((out.bar - (0.0115 + 0.25)).abs() < 1e-9, "{out:?}");
        assert_eq!(outlier(&me(0.2), &calm, &config), None, "inside the floor");
        // Everyone slow together: the median moves with them.
        assert_eq!(outlier(&me(1.5), &with_latency(&[1.4, 1.6, 1.3, 1.5]), &config), None);
        // Too few peers to say.
        assert_eq!(outlier(&me(1.5), &with_latency(&[0.01, 0.01, 0.01]), &config), None);
        // Peers in trouble are not calm.
        let mut troubled = calm.clone();
        for p in troubled.peers.iter_mut().take(2) {
            p.evidence.insert(Reason::MemoryExhaustion);
        }
        assert_eq!(outlier(&me(1.5), &troubled, &config), None);
    }

    #[test]
    fn evidence_counts_as_seen_after_views_have_shown_it_for_long_enough() {
        let config = FleetConfig::default();
        let mut sightings = Sightings::default();
        let at = |ms: Millis, evidence: &[Reason]| FleetView { at: ms, ..view(evidence, Vec::new()) };
        let hang = [Reason::AppUnresponsive];
        assert!(sightings.observe(Some(&at(0, &hang)), &config).is_empty());
        assert!(sightings.observe(Some(&at(0, &hang)), &config).is_empty(), "the same view again");
        assert!(sightings.observe(Some(&at(500, &hang)), &config).is_empty());
        assert!(sightings.observe(Some(&at(1_000, &hang)), &config).contains(Reason::AppUnresponsive));
        assert!(sightings.observe(None, &config).contains(Reason::AppUnresponsive), "no new view");
        assert!(sightings.observe(Some(&at(1_500, &[])), &config).is_empty(), "gone from the view");
        assert!(sightings.observe(Some(&at(2_000, &hang)), &config).is_empty(), "seen afresh");
    }

    #[test]
    fn revisions_are_counted_with_this_task() {
        let mut v = view(
            &[Reason::MemoryExhaustion],
            vec![
                Peer { revision: "8".into(), draining: true, ..peer("b", "b", &[Reason::MemoryExhaustion]) },
                peer("c", "c", &[]),
            ],
        );
        v.own.as_mut().unwrap().revision = "8".into();
        let counts = by_revision(&v);
        assert_eq!(
            counts.iter().map(|c| (c.revision.as_str(), c.tasks, c.draining)).collect::<Vec<_>>(),
            [("7", 1, 0), ("8", 2, 1)]
        );
        assert_eq!(counts[1].reasons[Reason::MemoryExhaustion.index()], 2);
    }
}
