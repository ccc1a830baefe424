//! Where a tick's time goes: one whole tick of the agent in local mode watching 1, 3 and 10 real
//! processes, its parts (the local sample alone, the metadata service's bodies parsed and
//! converted, the pipeline on a recorded sample) and `/metrics` rendering; and the heap
//! allocations of one steady-state tick, counted by a counting allocator.
//!
//! `cargo bench --bench tick` on the host, or as in a task (root; a new PID namespace shows
//! only the bench and the processes it starts):
//!
//! `cargo bench --no-run --bench tick` then
//! `unshare --pid --fork --mount-proc --net bash -c 'ip link set lo up; cargo bench --bench tick'`
//!
//! In local mode vigil reads `stat` for every process it can see (and every
//! `FACTS_EVERY_TICKS` ticks its command line, to choose the watched ones), so on the host the
//! whole-tick figures include the machine's other processes; the bench prints how many there
//! were.
//!
//! These are warm figures: the bench runs ticks back to back. In the agent, ticks are an
//! interval apart and the same work costs several times more in `vigil_tick_duration_seconds`
//! (cold caches, most likely).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil::config::{Config, Mode};
use vigil::judge::sample::Sample;
use vigil::serve::shared::Shared;
use vigil::sources::sampler::LocalSampler;
use vigil::sources::tmds::{parse_stats, parse_task, to_reading};
use vigil::tick::Agent;

/// Counts allocations (not frees) so that a tick's allocations can be reported.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WATCH_PREFIX: &str = "sleep 7777.";

/// `n` idle processes the agent watches, ended on drop.
struct Watched(Vec<Child>);

impl Watched {
    fn start(n: usize) -> Watched {
        let children = (1..=n)
            .map(|i| Command::new("sleep").arg(format!("7777.{i}")).spawn().expect("start sleep"))
            .collect();
        // Until each has exec'd, its command line is empty.
        std::thread::sleep(Duration::from_millis(100));
        Watched(children)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn local_config() -> Config {
    let watch = format!("^{}", WATCH_PREFIX.replace('.', "\\."));
    Config::from_lookup(|name| match name {
        "VIGIL_WATCH" => Some(watch.clone()),
        _ => None,
    })
    .expect("configuration")
}

fn visible_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|dir| dir.flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count())
        .unwrap_or(0)
}

/// A local-mode agent watching the [`Watched`] processes, on its own runtime, after `ticks`
/// ticks (the first ones size the buffers).
fn started_agent(ticks: usize) -> (tokio::runtime::Runtime, Arc<Shared>, Agent) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let config = local_config();
    let shared = Arc::new(Shared::new(Mode::Local, config.interval));
    let mut agent = rt.block_on(async { Agent::new(&config, Arc::clone(&shared)) }).expect("agent");
    for _ in 0..ticks {
        rt.block_on(agent.tick());
    }
    (rt, shared, agent)
}

fn whole_tick(c: &mut Criterion) {
    eprintln!("tick bench: {} processes visible in /proc", visible_processes());
    let mut group = c.benchmark_group("tick");
    for n in [1, 3, 10] {
        let _watched = Watched::start(n);
        let (rt, _shared, mut agent) = started_agent(20);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..100 {
            rt.block_on(agent.tick());
        }
        let per_tick = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 100.0;
        eprintln!("tick bench: {n} watched: {per_tick:.1} heap allocations per steady-state tick");
        group.bench_function(format!("local/{n}"), |b| b.iter(|| rt.block_on(agent.tick())));
    }
    group.finish();
}

fn local_sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("sample");
    for n in [1, 3, 10] {
        let watched = Watched::start(n);
        let watch = regex_lite::Regex::new(&format!("^{}", WATCH_PREFIX.replace('.', "\\."))).unwrap();
        let mut sampler =
            LocalSampler::new("/proc".into(), "/sys/fs/cgroup".into(), Some(watch), std::process::id());
        let mut sample = Sample::default();
        let mut errors = Vec::new();
        sampler.sample(&mut sample, &mut errors);
        assert_eq!(sample.processes.len(), watched.0.len(), "{errors:?}");
        group.bench_function(format!("local/{n}"), |b| {
            b.iter(|| {
                errors.clear();
                sampler.sample(&mut sample, &mut errors);
            })
        });
    }
    group.finish();
}

fn metadata(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tmds");
    // A real Fargate task with two containers, as the metadata service answered it.
    let task = std::fs::read(format!("{dir}/fargate-task-real-2025-04.json")).expect("task fixture");
    let stats = std::fs::read(format!("{dir}/fargate-task-stats-real-2025-04.json")).expect("stats fixture");
    c.bench_function("tmds/parse_and_convert", |b| {
        b.iter(|| {
            let task = parse_task(black_box(&task)).unwrap();
            let stats = parse_stats(black_box(&stats)).unwrap();
            to_reading(&task, Some(&stats), None)
        })
    });
}

fn metrics(c: &mut Criterion) {
    let _watched = Watched::start(3);
    let (_rt, shared, _agent) = started_agent(5);
    c.bench_function("metrics/encode", |b| b.iter(|| shared.metrics.encode()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = whole_tick, local_sample, metadata, metrics
}
criterion_main!(benches);
