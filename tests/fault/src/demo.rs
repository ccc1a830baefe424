//! The demo "transactions" service: a little CPU work and allocation per request, a shallow
//! `/health`, and the fault switches of [`crate::fault`] applied for real (touched memory, open
//! file descriptors, sleeping threads, busy loops, exits).
//!
//! Endpoints: `GET /health` (200 `ok`), `GET /tx` (one transaction, JSON), `GET /admin/fault`
//! (the active spec), `POST /admin/fault` (apply the spec in the body, once).

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::fault::{FaultKind, FaultSpec, leak_target_bytes, plateau_target_bytes, sawtooth_target_bytes};
use crate::http::{self, Body};

/// Environment variables the demo app reads.
pub const ENV_LISTEN: &str = "DEMO_LISTEN";
pub const ENV_FAULT: &str = "DEMO_FAULT";
pub const ENV_SEED: &str = "DEMO_SEED";
pub const ENV_WORKERS: &str = "DEMO_WORKERS";
pub const ENV_MEMORY_LIMIT_BYTES: &str = "DEMO_MEMORY_LIMIT_BYTES";
pub const ENV_MEMORY_USAGE_FILE: &str = "DEMO_MEMORY_USAGE_FILE";
pub const ENV_DISK_DIR: &str = "DEMO_DISK_DIR";
pub const ENV_DISK_LIMIT_BYTES: &str = "DEMO_DISK_LIMIT_BYTES";

const MIB: u64 = 1024 * 1024;
const PAGE: usize = 4096;
const TICK: Duration = Duration::from_millis(100);

/// The demo app's configuration, read once at start.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub listen: String,
    pub fault: FaultSpec,
    pub seed: u64,
    pub workers: usize,
    pub memory_limit_bytes: Option<u64>,
    pub memory_usage_file: Option<String>,
    /// The task's ephemeral storage (a folder) and its reserved size.
    pub disk_dir: Option<String>,
    pub disk_limit_bytes: Option<u64>,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {source}")]
    Fault { var: &'static str, source: crate::fault::SpecError },
    #[error("{var}: {value:?} is not a whole number")]
    NotNumber { var: &'static str, value: String },
}

impl DemoConfig {
    /// Reads the configuration through `lookup` (the environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<DemoConfig, ConfigError> {
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(var) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| ConfigError::NotNumber { var, value }),
            }
        };
        let fault = match lookup(ENV_FAULT) {
            Some(line) if !line.trim().is_empty() => {
                FaultSpec::parse(&line).map_err(|source| ConfigError::Fault { var: ENV_FAULT, source })?
            }
            _ => FaultSpec::none(),
        };
        let limit = number(ENV_MEMORY_LIMIT_BYTES, 0)?;
        Ok(DemoConfig {
            listen: lookup(ENV_LISTEN).unwrap_or_else(|| "0.0.0.0:8080".into()),
            fault,
            seed: number(ENV_SEED, 1)?,
            workers: number(ENV_WORKERS, 2)?.clamp(1, 16) as usize,
            memory_limit_bytes: (limit > 0).then_some(limit),
            memory_usage_file: lookup(ENV_MEMORY_USAGE_FILE),
            disk_dir: lookup(ENV_DISK_DIR),
            disk_limit_bytes: Some(number(ENV_DISK_LIMIT_BYTES, 0)?).filter(|b| *b > 0),
        })
    }
}

/// The SplitMix64 step: a tiny deterministic generator for per-request randomness.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One anonymous mapping of 1 MiB, every page touched so it is resident; unmapped on drop.
///
/// Mapping directly (instead of going through the allocator) makes freeing return the memory to
/// the kernel at once, which the sawtooth needs.
struct Block {
    address: *mut libc::c_void,
}

// SAFETY: the mapping is owned exclusively by the block and never aliased.
unsafe impl Send for Block {}

impl Block {
    fn new() -> Option<Block> {
        let len = MIB as usize;
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return None;
        }
        for offset in (0..len).step_by(PAGE) {
            // SAFETY: offset is inside the mapping just created, which is writable.
            unsafe { *(address as *mut u8).add(offset) = 1 };
        }
        Some(Block { address })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: the address and length are those of the mapping this block owns.
        unsafe { libc::munmap(self.address, MIB as usize) };
    }
}

/// Memory held on purpose, in whole MiB blocks.
#[derive(Default)]
struct Ballast {
    blocks: Vec<Block>,
}

impl Ballast {
    fn bytes(&self) -> u64 {
        self.blocks.len() as u64 * MIB
    }

    /// Grows or shrinks towards `target`, adding at most `max_step` bytes in one call.
    fn move_towards(&mut self, target: u64, max_step: u64) {
        let wanted = (target / MIB) as usize;
        let room = (max_step / MIB).max(1) as usize;
        if wanted < self.blocks.len() {
            self.blocks.truncate(wanted);
        }
        let mut added = 0;
        while self.blocks.len() < wanted && added < room {
            match Block::new() {
                Some(block) => self.blocks.push(block),
                None => return,
            }
            added += 1;
        }
    }
}

/// The fault as applied, with the moment it was applied.
struct Applied {
    spec: FaultSpec,
    at: Instant,
}

impl Applied {
    /// Seconds the fault has been in effect, or `None` before its `after` has passed or after
    /// its `for` has run out.
    fn active_seconds(&self, now: Instant) -> Option<f64> {
        let elapsed = now.duration_since(self.at).as_secs_f64() - self.spec.after_seconds();
        let within = self.spec.for_seconds().is_none_or(|limit| elapsed <= limit);
        (elapsed >= 0.0 && within).then_some(elapsed)
    }
}

/// Everything the fault effects keep.
#[derive(Default)]
struct Effects {
    leaked: Ballast,
    sawtooth: Ballast,
    files: Vec<File>,
    threads: u64,
    /// Bytes written by the disk fill so far.
    disk_written: u64,
    /// The task's memory when the plateau took effect (its exponential approach starts there).
    plateau_start: Option<u64>,
}

/// The app's shared state.
pub struct Demo {
    config: DemoConfig,
    applied: Mutex<Applied>,
    effects: Mutex<Effects>,
    /// Bumped at every new spec so busy threads of an old `cpu` fault stop.
    generation: Arc<AtomicU64>,
    requests: AtomicU64,
    /// Set once the disk fill has met the end of the task's ephemeral storage.
    disk_full: std::sync::atomic::AtomicBool,
}

impl Demo {
    /// Builds the state with the configured fault applied now.
    pub fn new(config: DemoConfig) -> Arc<Demo> {
        let applied = Applied { spec: config.fault.clone(), at: Instant::now() };
        Arc::new(Demo {
            config,
            applied: Mutex::new(applied),
            effects: Mutex::new(Effects::default()),
            generation: Arc::new(AtomicU64::new(0)),
            requests: AtomicU64::new(0),
            disk_full: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn apply(&self, spec: FaultSpec) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        {
            let mut effects = self.effects.lock().expect("effects lock");
            effects.sawtooth = Ballast::default();
            effects.plateau_start = None;
        }
        *self.applied.lock().expect("fault lock") = Applied { spec, at: Instant::now() };
    }

    /// The active spec and how long it has been in effect.
    fn current(&self, now: Instant) -> (FaultSpec, Option<f64>) {
        let applied = self.applied.lock().expect("fault lock");
        (applied.spec.clone(), applied.active_seconds(now))
    }
}

/// Serves the app on `listener` and runs the fault effects until the process ends.
pub async fn run(demo: Arc<Demo>, listener: TcpListener) {
    tokio::spawn(effects_loop(Arc::clone(&demo)));
    http::serve(listener, move |request| handle(Arc::clone(&demo), request)).await;
}

async fn handle(demo: Arc<Demo>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if path == "/admin/fault" {
        return admin(&demo, request).await;
    }
    let (spec, active) = demo.current(Instant::now());
    if let Some(seconds) = active {
        let is_health = path == "/health";
        match spec.kind {
            FaultKind::Hang => std::future::pending::<()>().await,
            FaultKind::Latency if !is_health || spec.get("health", 1.0) > 0.0 => {
                let delay_ms = (spec.get("rate", 100.0) * seconds).min(spec.get("max", 30_000.0));
                tokio::time::sleep(Duration::from_millis(delay_ms.max(0.0) as u64)).await;
            }
            _ => {}
        }
        if !is_health && spec.kind == FaultKind::Errors {
            let n = demo.requests.fetch_add(1, Ordering::Relaxed);
            let draw = splitmix64(demo.config.seed ^ n) as f64 / u64::MAX as f64;
            if draw < spec.get("ratio", 1.0) {
                return http::text(StatusCode::SERVICE_UNAVAILABLE, "dependency unavailable\n");
            }
        }
    }
    if path == "/tx" && demo.disk_full.load(Ordering::Relaxed) {
        return http::text(StatusCode::INSUFFICIENT_STORAGE, "cannot write the journal: disk full\n");
    }
    match path.as_str() {
        "/health" => http::text(StatusCode::OK, "ok\n"),
        "/" | "/tx" => transaction(&demo),
        _ => http::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// One transaction: allocate 64 KiB, fill it, checksum it.
fn transaction(demo: &Demo) -> Response<Body> {
    let n = demo.requests.fetch_add(1, Ordering::Relaxed);
    let mut state = demo.config.seed ^ n;
    let mut buffer = vec![0u64; 8192];
    for slot in buffer.iter_mut() {
        state = splitmix64(state);
        *slot = state;
    }
    let sum = buffer.iter().fold(0u64, |acc, x| acc.wrapping_add(*x));
    http::json(StatusCode::OK, format!("{{\"id\":{n},\"sum\":{}}}\n", sum % 1_000_000))
}

async fn admin(demo: &Demo, request: Request<Incoming>) -> Response<Body> {
    match *request.method() {
        Method::GET => {
            let (spec, active) = demo.current(Instant::now());
            let body = format!(
                "{{\"fault\":\"{spec}\",\"active_seconds\":{}}}\n",
                active.map_or("null".into(), |s| format!("{s:.1}"))
            );
            http::json(StatusCode::OK, body)
        }
        Method::POST => {
            let body = http::read_body(request).await;
            match FaultSpec::parse(&String::from_utf8_lossy(&body)) {
                Ok(spec) => {
                    let reply = format!("applied {spec}\n");
                    demo.apply(spec);
                    http::text(StatusCode::OK, reply)
                }
                Err(e) => http::text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        _ => http::text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n"),
    }
}

/// Applies the active fault's effects every [`TICK`].
async fn effects_loop(demo: Arc<Demo>) {
    let mut ticker = tokio::time::interval(TICK);
    let mut cpu_generation = None;
    loop {
        ticker.tick().await;
        let (spec, active) = demo.current(Instant::now());
        let Some(seconds) = active else {
            // A `cpu` fault whose `for` ran out: stop its busy threads.
            if cpu_generation.take().is_some() {
                demo.generation.fetch_add(1, Ordering::SeqCst);
            }
            continue;
        };
        let step = (spec.get("rate", 10.0) * TICK.as_secs_f64() * MIB as f64) as u64;
        let mut effects = demo.effects.lock().expect("effects lock");
        match spec.kind {
            FaultKind::MemLeak => {
                let target = leak_target_bytes(spec.get("rate", 10.0), spec.get("step", 0.0), seconds);
                // The target already grows smoothly (or in steps) with time: no extra cap.
                effects.leaked.move_towards(target, u64::MAX);
            }
            FaultKind::Sawtooth => {
                let target = sawtooth_target_bytes(spec.get("rate", 10.0), spec.get("peak", 64.0), seconds);
                effects.sawtooth.move_towards(target, u64::MAX);
            }
            FaultKind::Plateau => plateau_step(&demo.config, &spec, &mut effects, step, seconds),
            FaultKind::FdLeak => {
                let wanted = (spec.get("rate", 10.0) * seconds) as usize;
                while effects.files.len() < wanted {
                    match File::open("/dev/null") {
                        Ok(file) => effects.files.push(file),
                        Err(_) => break,
                    }
                }
            }
            FaultKind::ThreadLeak => {
                let wanted = (spec.get("rate", 5.0) * seconds) as u64;
                while effects.threads < wanted {
                    spawn_sleeper();
                    effects.threads += 1;
                }
            }
            FaultKind::Crash => {
                eprintln!("demo-app: crashing as asked ({spec})");
                std::process::exit(spec.get("code", 1.0) as i32);
            }
            FaultKind::Cpu => {
                let generation = demo.generation.load(Ordering::SeqCst);
                if cpu_generation != Some(generation) {
                    cpu_generation = Some(generation);
                    for _ in 0..spec.get("threads", 1.0).max(1.0) as usize {
                        spawn_burner(Arc::clone(&demo.generation), generation);
                    }
                }
            }
            FaultKind::DiskFill => disk_fill_step(&demo, &spec, &mut effects, seconds),
            FaultKind::None
            | FaultKind::Hang
            | FaultKind::Latency
            | FaultKind::Errors
            | FaultKind::Kill
            | FaultKind::KillSidecar
            | FaultKind::PacketLoss
            | FaultKind::IoStress
            | FaultKind::PrometheusStop => {}
        }
    }
}

/// Writes towards `rate` MB/s × seconds on the task's ephemeral storage; marks the disk full when
/// the reservation is used up or a write fails.
fn disk_fill_step(demo: &Demo, spec: &FaultSpec, effects: &mut Effects, seconds: f64) {
    use std::io::Write as _;
    let (Some(dir), Some(limit)) = (demo.config.disk_dir.as_deref(), demo.config.disk_limit_bytes) else {
        return;
    };
    if demo.disk_full.load(Ordering::Relaxed) {
        return;
    }
    let target = leak_target_bytes(spec.get("rate", 4.0), 0.0, seconds).min(limit);
    let path = std::path::Path::new(dir).join("fill.bin");
    let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) else {
        demo.disk_full.store(true, Ordering::Relaxed);
        return;
    };
    let chunk = vec![0x5au8; 64 * 1024];
    while effects.disk_written < target {
        let n = chunk.len().min((target - effects.disk_written) as usize);
        if file.write_all(&chunk[..n]).is_err() {
            demo.disk_full.store(true, Ordering::Relaxed);
            return;
        }
        effects.disk_written += n as u64;
    }
    if effects.disk_written >= limit {
        eprintln!("demo-app: ephemeral storage full ({limit} bytes)");
        demo.disk_full.store(true, Ordering::Relaxed);
    }
}

/// Grows towards `percent` % of the task's memory limit and holds there: at `rate` MB/s, or with
/// `tau` > 0 along the exponential approach of [`plateau_target_bytes`] (then `rate` is unused).
fn plateau_step(config: &DemoConfig, spec: &FaultSpec, effects: &mut Effects, step: u64, seconds: f64) {
    let Some(limit) = config.memory_limit_bytes else {
        return;
    };
    let goal = (limit as f64 * spec.get("percent", 85.0) / 100.0) as u64;
    let used = config
        .memory_usage_file
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or_else(|| own_resident_bytes().unwrap_or(0));
    let tau = spec.get("tau", 0.0);
    let (target, step) = if tau > 0.0 {
        let start = *effects.plateau_start.get_or_insert(used);
        (plateau_target_bytes(start, goal, tau, seconds), u64::MAX)
    } else {
        (goal, step)
    };
    if used + MIB < target {
        let grow = step.min(target - used).max(MIB);
        let held = effects.leaked.bytes();
        effects.leaked.move_towards(held + grow, grow);
    }
}

fn own_resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE as u64)
}

/// Starts a thread that sleeps for ever; a failed start aborts the process, as a runtime that
/// cannot create a native thread would.
fn spawn_sleeper() {
    let started = std::thread::Builder::new().stack_size(64 * 1024).spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    });
    if let Err(e) = started {
        eprintln!("demo-app: cannot create a thread: {e}");
        std::process::abort();
    }
}

/// Starts a thread that spins until the fault generation changes.
fn spawn_burner(generation: Arc<AtomicU64>, mine: u64) {
    let _ = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
        let mut x = mine;
        while generation.load(Ordering::Relaxed) == mine {
            for _ in 0..10_000 {
                x = splitmix64(x);
            }
            std::hint::black_box(x);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<DemoConfig, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DemoConfig::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_are_healthy() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080");
        assert_eq!(config.fault, FaultSpec::none());
        assert_eq!(config.memory_limit_bytes, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = config(&[(ENV_FAULT, "melt")]).unwrap_err().to_string();
        assert!(error.starts_with("DEMO_FAULT"), "{error}");
        let error = config(&[(ENV_SEED, "x")]).unwrap_err().to_string();
        assert!(error.starts_with("DEMO_SEED"), "{error}");
    }

    #[test]
    fn ballast_is_resident_and_freed() {
        let mut ballast = Ballast::default();
        ballast.move_towards(3 * MIB, u64::MAX);
        assert_eq!(ballast.bytes(), 3 * MIB);
        ballast.move_towards(8 * MIB, 2 * MIB);
        assert_eq!(ballast.bytes(), 5 * MIB);
        ballast.move_towards(0, u64::MAX);
        assert_eq!(ballast.bytes(), 0);
    }
}
